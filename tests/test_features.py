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
