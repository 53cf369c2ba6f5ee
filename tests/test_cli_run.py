"""`fpt-bench run` end to end on tiny configs, and user errors -> one message, exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import TINY, load_json, result_files, run_cli, run_subprocess

from fpt_bench.cli import main
from fpt_bench.results.store import read_result


def test_acceptance_smoke_command_writes_one_valid_result(tmp_path: Path) -> None:
    proc = run_subprocess(
        "run", "--task", "bit_xor", "--backbone", "gpt2", "--backbone-args",
        "weights=random,n_layers=2,n_embd=128,n_head=4", "--policy", "fpt", "--profile", "smoke",
        "--device", "cpu", "--output-dir", str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    files = result_files(tmp_path)
    assert len(files) == 1
    result = read_result(files[0])
    assert result.status == "ok"
    assert result.cell.task == "bit_xor" and result.cell.profile == "smoke"
    assert result.timing.steps == 20
    assert 0.0 <= result.metrics.test_accuracy <= 1.0
    assert [p.step for p in result.metrics.curve] == [10, 20]
    assert result.provenance.seeds["cell"] == 0
    assert result.provenance.torch and result.provenance.plugins["bits"] == "0.1.0"
    assert "Traceback" not in proc.stderr


def test_rerun_skips_finished_cells_and_overwrite_always_reruns(tmp_path: Path, capsys) -> None:
    args = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "2",
            "--device", "cpu", "--output-dir", str(tmp_path), "--seeds", "0,1"]
    code, out, _ = run_cli(*args, capsys=capsys)
    assert code == 0 and "2 ok" in out
    stamps = {p: p.stat().st_mtime_ns for p in result_files(tmp_path)}
    assert len(stamps) == 2
    code, out, _ = run_cli(*args, capsys=capsys)
    assert code == 0 and "2 skipped" in out
    assert {p: p.stat().st_mtime_ns for p in result_files(tmp_path)} == stamps
    code, out, _ = run_cli(*args, "--overwrite", "always", capsys=capsys)
    assert code == 0 and "2 ok" in out


def test_config_file_and_flags_merge(tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        'tasks = ["bit_xor"]\nprofile = "smoke"\ndevice = "cpu"\nseeds = [3]\n'
        '[backbone_args]\nweights = "random"\nn_layers = 1\nn_embd = 32\nn_head = 2\n'
        '[hparams]\nsteps = 3\nbatch_size = 2\n'
    )
    code, _, err = run_cli("run", "--config", str(config), "--steps", "4", "--output-dir", str(tmp_path / "out"),
                           capsys=capsys)
    assert code == 0, err
    data = load_json(result_files(tmp_path / "out")[0])
    assert data["cell"]["seed"] == 3
    assert data["cell"]["hparams"]["steps"] == 4  # the command line wins
    assert data["cell"]["hparams"]["batch_size"] == 2  # the file's value stays
    assert data["cell"]["backbone_args"]["n_layers"] == 1


def test_default_profile_is_printed(tmp_path: Path, capsys) -> None:
    code, out, _ = run_cli("run", "--task", "bit_xor", "--backbone-args", TINY, "--steps", "1",
                           "--device", "cpu", "--output-dir", str(tmp_path), capsys=capsys)
    assert code == 0
    assert "profile: quick (default on cpu" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "bit_xorr"], "unknown task 'bit_xorr'; did you mean 'bit_xor' or 'bit_memory'?"),
        (["--task", "bit_xor", "--policy", "fpt_frozen"], "unknown policy 'fpt_frozen'; did you mean"),
        (["--task", "bit_xor", "--backbone", "gpt3"], "unknown backbone 'gpt3'; did you mean 'gpt2'?"),
        (["--task", "bit_xor", "--backbone-args", "weights=randm"], "bad --backbone-args for backbone 'gpt2': weights"),
        (["--task", "bit_xor", "--backbone-args", "n_layer=2"],
         "n_layer: Extra inputs are not permitted (did you mean 'n_layers'?)"),
        (["--task", "bit_xor", "--task-args", "nval=3"],
         "nval: Extra inputs are not permitted (did you mean 'n_val'?)"),
        (["--task", "bit_xor", "--policy-args", "rank=3"],
         "rank: Extra inputs are not permitted (it takes no options)"),
        (["--task", "bit_xor", "--policy", "lora", "--policy-args", "zzz=3"],
         "zzz: Extra inputs are not permitted (accepted: rank, alpha, targets, dropout, base)"),
        (["--task", "bit_xor", "--backbone-args", "oops"], "--backbone-args: expected key=value pairs"),
        (["--task", "bit_xor", "--seeds", "a,b"], "--seeds 'a,b' (item 1): Input should be a valid integer"),
        (["--task", "bit_xor", "--profile", "huge"], "unknown profile 'huge'"),
        (["--task", "bit_xor", "--device", "tpu"], "--device 'tpu': use auto, cpu, cuda or cuda:N"),
        (["--task", "bit_xor", "--steps", "0"], "--steps '0': Input should be greater than 0"),
        (["--task", "bit_xor", "--task-args", "n_test=-1"], "bad --task-args for task 'bit_xor': n_test"),
        ([], "nothing to run: give --task NAME"),
        (["--all", "--suite", "first_run"], "--all and --suite first_run both choose the tasks: --all runs every"),
        (["--all", "--task", "bit_xor"], "--all and --task both choose the tasks"),
        (["--suite", "nope"], "unknown suite 'nope'"),
        (["--task", "bit_xor", "--config", "/nonexistent.toml"], "config file /nonexistent.toml does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_message(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    code, out, err = run_cli("run", "--device", "cpu", "--output-dir", str(tmp_path), *args, capsys=capsys)
    assert code == 2
    assert message in err
    assert err.startswith("fpt-bench: error: ") and err.count("\n") == 1
    assert result_files(tmp_path) == []


def test_bad_config_file_key_and_toml(tmp_path: Path, capsys) -> None:
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text('tasks = ["bit_xor"]\nstepz = 3\n')
    code, _, err = run_cli("run", "--config", str(bad_key), capsys=capsys)
    assert code == 2 and (f"bad run configuration in {bad_key}: stepz: Extra inputs are not permitted "
                          "(did you mean 'hparams.steps'?)") in err
    bad_toml = tmp_path / "broken.toml"
    bad_toml.write_text("tasks = [\n")
    code, _, err = run_cli("run", "--config", str(bad_toml), capsys=capsys)
    assert code == 2 and f"config file {bad_toml} is not valid TOML" in err


def test_cli_user_error_has_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    proc = run_subprocess("run", "--task", "bit_memry", "--output-dir", str(tmp_path))
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fpt-bench: error: unknown task 'bit_memry'; did you mean 'bit_memory'")
    assert "Traceback" not in proc.stderr


def test_ls_and_plugins_json(capsys) -> None:
    import json

    code, out, _ = run_cli("ls", "policies", "--json", capsys=capsys)
    assert code == 0
    names = {row["name"] for row in json.loads(out)}
    assert {"fpt", "full", "output_only", "out", "out_norm", "out_norm_in", "out_norm_in_pos", "fpt_ff",
            "fpt_attn", "fpt_ff_attn", "fpt_frozen_norm", "bitfit"} <= names
    assert "options" not in json.loads(out)[0]  # only with --options
    code, out, _ = run_cli("ls", "policies", "--options", "--json", capsys=capsys)
    lora = {o["name"]: o for o in next(r for r in json.loads(out) if r["name"] == "lora")["options"]}
    assert lora["rank"] == {"name": "rank", "default": 8, "required": False, "description": "rank r of each update"}
    code, out, _ = run_cli("ls", "tasks", "--options", capsys=capsys)
    bit_memory = out.split("bit_xor")[0]
    assert code == 0 and re.search(r"\n  n_val +=500 +examples in the fixed validation set\n", bit_memory)
    code, out, _ = run_cli("plugins", "--json", capsys=capsys)
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["bits"]["distribution"] == "fpt-bench"
    assert plugins["bits"]["registered"]["task"] == ["bit_memory", "bit_xor"]
    assert plugins["gpt2"]["status"] == "ok"


def test_a_flag_error_is_one_message_and_where_to_look(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--precision", "foo"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err == ("fpt-bench run: error: argument --precision: invalid choice: 'foo' (choose from 'auto', 'fp32', "
                   "'bf16')\n  (`fpt-bench run --help` lists what it takes)\n")  # not run's 20-line usage first


@pytest.mark.parametrize(("argv", "hint"), [
    (["run", "--taks", "bit_xor"], "unrecognized arguments: --taks bit_xor; did you mean '--task' or"),
    (["ls", "tasks", "--opts"], "unrecognized arguments: --opts; did you mean '--options'"),
    (["leaderboard", "--publsh", "site"], "unrecognized arguments: --publsh; did you mean '--publish'"),
    (["--verison"], "unrecognized arguments: --verison; did you mean '--version'?"),
])
def test_a_misspelt_flag_names_the_subcommands_closest_flags(argv: list[str], hint: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and hint in err and err.count("\n") == 2
    assert err.endswith(f"(`fpt-bench {argv[0]} --help` lists what it takes)\n" if argv[0] != "--verison"
                        else "(`fpt-bench --help` lists what it takes)\n")


def test_a_misspelt_sweep_setting_names_the_closest_one(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli("run", "--task", "bit_xor", "--output-dir", str(tmp_path), "--sweep", "lrr=1e-3,1e-4",
                           capsys=capsys)
    assert code == 2 and "'lrr' is not a training setting; did you mean 'lr'? (one of: steps," in err
