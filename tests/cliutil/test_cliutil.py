"""The shared CLI module: checks name the flag and bound, atomic writes keep the umask mode and leave no temp file."""
import math
import os
import stat

import pytest

from cliutil import (BadInput, OneLineParser, check_int, check_new_file, check_number, check_writable_dir, run_cli,
                     write_json_atomic, write_text_atomic)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_number_refuses_non_finite(value):
    with pytest.raises(BadInput, match="--eta must be a finite number"):
        check_number(value, "--eta", 0, 1)


def test_check_number_names_the_range():
    with pytest.raises(BadInput, match=r"--eta must be in \[0, 1\], got 2"):
        check_number(2.0, "--eta", 0, 1)
    with pytest.raises(BadInput, match=r"> 0"):
        check_number(0.0, "--tol", lo=0, lo_open=True)
    with pytest.raises(BadInput, match="must be a number"):
        check_number("1.0", "cov")
    check_number(1.0, "--eta", 0, 1)
    check_number(None, "--eta", 0, 1)


def test_check_int():
    with pytest.raises(BadInput, match="must be an integer"):
        check_int(1.5, "--steps")
    with pytest.raises(BadInput, match="must be an integer"):
        check_int(True, "--steps")
    with pytest.raises(BadInput, match=r"\[1, 1000\]"):
        check_int(5000, "--steps", 1, 1000)
    check_int(10, "--steps", 1, 1000)


def test_paths(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(BadInput, match="is a file"):
        check_writable_dir(f / "sub", "--out")
    with pytest.raises(BadInput, match="is a file"):
        check_writable_dir(f, "--out")
    with pytest.raises(BadInput, match="is a folder"):
        check_new_file(tmp_path, "--out")
    with pytest.raises(BadInput, match="must end in .png"):
        check_new_file(tmp_path / "a.jpg", "--out", [".png"])
    assert check_new_file(tmp_path / "new" / "a.png", "--out", [".png"]).name == "a.png"


def test_atomic_write_mode_and_no_temp(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_text_atomic(tmp_path / "a" / "x.txt", "hello")
    finally:
        os.umask(old)
    assert p.read_text() == "hello"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert sorted(x.name for x in p.parent.iterdir()) == ["x.txt"]


def test_atomic_json_refuses_nan_and_keeps_old(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("old")
    with pytest.raises(ValueError):
        write_json_atomic(p, {"x": math.nan})
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["r.json"]


def test_run_cli_exit_codes(capsys):
    def bad():
        raise BadInput("nope\nsecond line")

    def boom():
        raise RuntimeError("kaput")

    assert run_cli(bad) == 2
    assert capsys.readouterr().err == "error: nope second line\n"
    assert run_cli(boom) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert run_cli(lambda: 0) == 0


def test_parser_one_line(capsys):
    p = OneLineParser(prog="python -m x")
    p.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--n", "abc"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "python -m x --help" in err


def test_number_bounds_are_written_exactly():
    from cliutil import MAX_SEED

    with pytest.raises(BadInput, match=r"\[0, 2\*\*63 - 1\], got 1180591620717411303424"):  # MAX_SEED as written
        check_int(2 ** 70, "--seed", 0, MAX_SEED)
    with pytest.raises(BadInput, match=r"--lr must be in \(0, 0.5\)"):
        check_number(0.5, "--lr", 0, 0.5, lo_open=True, hi_open=True)


def test_quiet_third_party_logs_restores_levels(monkeypatch, capsys):
    import logging

    from cliutil import quiet_third_party_logs

    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    monkeypatch.setenv("DIFFUSERS_VERBOSITY", "info")  # the user's choice wins
    lg = logging.getLogger("transformers")
    old = lg.level
    with quiet_third_party_logs():
        assert os.environ["TRANSFORMERS_VERBOSITY"] == "error" and lg.level == logging.ERROR
        assert logging.getLogger("diffusers").level == logging.INFO
    assert "TRANSFORMERS_VERBOSITY" not in os.environ and os.environ["DIFFUSERS_VERBOSITY"] == "info"
    assert lg.level == old


def test_atomic_path_failure_leaves_old_file(tmp_path):
    from cliutil import atomic_path

    p = tmp_path / "out.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert p.read_bytes() == b"old" and [x.name for x in tmp_path.iterdir()] == ["out.bin"]
