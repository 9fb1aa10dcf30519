"""Running and measuring processes: the one home of a run's usage, its spawning and its end.

usage    Usage, the exit value convention, cost = CPU x speed
process  spawn a session leader, kill its group, reap it (stdlib only: shared below)
cgroup   a job's own cgroup: counted and killed whole (stdlib only)
measure  the collectors' synchronous runner
spawn    the daemon's end of the spawner pipe (SpawnerLink, Child)
spawner  the spawner process, its other end (SpawnerLoop, JobProcess)
feed     a job's stdin, fed from its submitter's connection
agent    the ssh backend's remote agent, sent to the host as source
"""
