from router.learn.drift import Drift


def test_recent_accuracy_and_drifting_templates():
    d = Drift(window=10, bound=0.8)
    for _ in range(10):
        assert d.record("a", 0.9, 2.0, 1.0) is True          # said over, was over
        d.record("b", 0.9, 0.5, 1.0)                          # said over, was under
    assert d.record("c", None, 2.0, 1.0) is None              # no model decision: not judged
    assert d.accuracy() == {"a": 1.0, "b": 0.0}
    assert d.drifting() == ["b"]
    for _ in range(10):                                        # the window forgets old misses
        d.record("b", 0.1, 0.5, 1.0)
    assert d.drifting() == [] and d.accuracy()["b"] == 1.0


def test_too_few_jobs_do_not_count_as_drift():
    d = Drift(window=10, bound=0.8)
    for _ in range(4):
        d.record("a", 0.9, 0.5, 1.0)
    assert d.drifting() == []
