from pathlib import Path

from hypothesis import given, strategies as st

from router.features import FILE, NUM, shape, template, features


def test_numbers_are_masked_in_every_spelling():
    argv = ["prog", "42", "-3.5", "1e3", "--n=42", "-j4", "--mode=fast", "word"]
    sh = shape(argv)
    assert sh.template == f"prog {NUM} {NUM} {NUM} --n={NUM} -j{NUM} --mode=fast word"
    assert sh.features == (42.0, -3.5, 1000.0, 42.0, 4.0)


def test_same_program_other_numbers_is_one_template():
    assert template(["./prog", "42"], cwd="/x") == template(["./prog", "7"], cwd="/x")
    assert template(["./prog", "42"], cwd="/x") == f"/x/prog {NUM}"


def test_files_are_masked_and_sized(tmp_path: Path):
    a, b = tmp_path / "a.iso", tmp_path / "b.iso"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"x" * 2000)
    assert template(["md5sum", str(a)]) == template(["md5sum", str(b)]) == f"md5sum {FILE}"
    assert features(["md5sum", str(b)]) == [2000.0]
    assert features(["cat", f"--in={a}"]) == [10.0]
    assert template(["md5sum", "a.iso"], cwd=str(tmp_path)) == f"md5sum {FILE}"


def test_string_flags_make_distinct_templates():
    assert template(["solve", "--mode=fast", "3"]) != template(["solve", "--mode=exact", "3"])


def test_program_name_is_never_masked(tmp_path: Path):
    assert template(["42"]) == "42"
    assert template(["ls", "nan", "inf"]) == "ls nan inf"


argument = st.one_of(
    st.integers(-10**9, 10**9).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.sampled_from(["--n=5", "-j8", "-O2", "--x=1e-3", "-", "--", "{}"]),
)


@given(st.lists(argument, max_size=8))
def test_parser_is_deterministic_and_consistent(args):
    argv = ["prog", *args]
    first, second = shape(argv), shape(argv)
    assert first == second
    assert len(first.features) == first.template.count(NUM) + first.template.count(FILE)
    assert all(isinstance(v, float) and v == v for v in first.features)


@given(st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=5),
       st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=5))
def test_numbers_never_change_the_template(xs, ys):
    n = min(len(xs), len(ys))
    a = ["prog", *map(str, xs[:n])]
    b = ["prog", *map(str, ys[:n])]
    assert template(a) == template(b)
    assert features(a) == [float(x) for x in xs[:n]]


# Issue 17 item 9: values that name a run (dates, hex ids, UUIDs) mask to one template.

from datetime import datetime, timedelta, timezone  # noqa: E402
import uuid  # noqa: E402

from router.features import DATE, HEX, UUID  # noqa: E402

_times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1))
_zones = st.sampled_from([None, timezone.utc, timezone(timedelta(hours=-5))])


@given(_times, _zones, st.sampled_from(["minutes", "seconds", "milliseconds"]))
def test_dates_and_times_are_masked_in_iso_spellings(when, zone, spec):
    stamp = when.replace(tzinfo=zone).isoformat(timespec=spec)
    assert template(["prog", stamp]) == f"prog {DATE}"
    assert template(["prog", f"--at={stamp}"]) == f"prog --at={DATE}"
    assert template(["prog", when.date().isoformat()]) == f"prog {DATE}"
    assert features(["prog", stamp, "7"]) == [7.0]


@given(st.uuids())
def test_uuids_are_masked(value):
    assert template(["prog", str(value)]) == template(["prog", str(uuid.UUID(int=0))]) \
        == f"prog {UUID}"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@given(st.binary(min_size=3, max_size=20).map(bytes.hex)
       .filter(lambda h: any(c.isdigit() for c in h) and any(c.isalpha() for c in h))
       .filter(lambda h: not _is_number(h)))      # 1e5 and 0e12 stay numbers
def test_hex_ids_are_masked(value):
    assert template(["prog", f"--id={value}"]) == f"prog --id={HEX}"
    assert template(["git", "show", value]) == f"git show {HEX}"


@given(st.text(alphabet="ghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_plain_words_stay_themselves(word):
    assert template(["prog", word]) == f"prog {word}"


def test_short_hex_looking_words_and_numbers_keep_their_meaning():
    assert template(["prog", "face", "abcdef", "add"]) == "prog face abcdef add"
    assert shape(["prog", "123456"]).features == (123456.0,)
