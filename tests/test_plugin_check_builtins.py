# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""`fpt-bench check-plugin` on fpt-bench's own plugins: every one passes, every built-in backbone is built at its
smoke size and checked (the causal ones for causality), every policy is applied to every built-in backbone, and
the suites are checked by the suite spec's own validation (not a copy of it that can drift)."""

from __future__ import annotations

import json
from importlib.metadata import distribution
from importlib.util import find_spec
from pathlib import Path

import pytest
from plugin_helpers import fake_dist, plugin_site  # noqa: F401 - fixtures

from fpt_bench import SuiteCell, SuiteSpec
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host

BACKBONES = ("gpt2", "hf_decoder", "hf_encoder", "hf_ssm", "lstm", "minilm", "timm_vit", "vit")
CAUSAL = {"gpt2", "hf_decoder", "hf_ssm", "lstm"}
BUILT = ("build", "roles", "layers", "used_numel", "forward", "padding mask", "causal", "determinism per seed",
         "smoke cell")
NO_TIMM = "cannot be built here with"  # where the optional extra timm is not installed


@pytest.fixture(scope="module")
def report() -> dict:
    """One check-plugin of the fpt-bench distribution (every built-in entry point), shared by the tests below."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check-plugin", "fpt-bench", "--json"])
    data = json.loads(out.getvalue())
    data["code"] = code
    return data


def rows(report: dict, component: str) -> dict[str, tuple[str, str]]:
    return {r["check"]: (r["status"], r["detail"]) for r in report["results"] if r["component"] == component}


def registered(report: dict, kind: str) -> list[str]:
    """What fpt-bench's own plugins registered, as the checked host saw it."""
    return sorted(name for p in report["plugins"] for name in p["registered"].get(kind, []))


def test_every_built_in_plugin_passes(report: dict) -> None:
    failed = [(r["component"], r["check"], r["detail"]) for r in report["results"] if r["status"] == "fail"]
    assert failed == []
    assert report["passed"] and report["code"] == 0
    plugins = {r["component"] for r in report["results"] if r["check"] == "loads and registers"}
    entry_points = distribution("fpt-bench").entry_points.select(group="fpt_bench")
    assert plugins == {f"plugin {e.name}" for e in entry_points} and len(plugins) == 17


def test_every_built_in_backbone_has_smoke_args_and_is_checked(report: dict) -> None:
    host = get_host()
    assert registered(report, "backbone") == sorted(BACKBONES)
    for name in BACKBONES:
        assert host.backbones.get(name).smoke_args is not None, name
        checks = rows(report, f"backbone {name}")
        if name == "timm_vit" and find_spec("timm") is None:
            assert checks["build"][0] == "skip" and NO_TIMM in checks["build"][1]
            continue
        assert {check: status for check, (status, _) in checks.items() if check in BUILT} == dict.fromkeys(
            BUILT, "pass"), name
        causal = checks["causal"][1]
        if name in CAUSAL:
            assert causal == "causal: positions 0..5 unchanged when positions 6..11 change", name
        else:
            assert causal == "not causal (causal = False): every position may see every other", name


def test_every_policy_is_applied_to_every_built_in_backbone(report: dict) -> None:
    policies = registered(report, "policy")
    assert len(policies) == 15
    for policy in policies:
        checks = rows(report, f"policy {policy}")
        assert set(checks) == {"spec and options", "smoke cell", *(f"on {b}" for b in BACKBONES)}, policy
        skipped = {check: detail for check, (status, detail) in checks.items() if status != "pass"}
        expected = {}
        if policy == "lora":  # LoRA adapts projections; an LSTM has none: the policy's own message, a skip
            expected["on lstm"] = ("does not apply to lstm: lora: the backbone has no Linear or Conv1D module with "
                                   "role attention; LoRA needs attention or feed-forward projections")
        if find_spec("timm") is None:
            expected["on timm_vit"] = skipped.get("on timm_vit", "")
            assert "needs the timm package" in expected["on timm_vit"]
        assert skipped == expected, policy
    # input 3 x 16 + 16, output 34, norms 2 x 288; the default roles=attention+feedforward: none in an LSTM
    assert rows(report, "policy fpt_layers")["on lstm"] == ("pass", "trains 674 of 5,026 (13.4%)")


def test_the_projects_own_suites_pass(report: dict) -> None:
    suites = registered(report, "suite")
    assert len(suites) == 17
    for name in suites:
        status, detail = rows(report, f"suite {name}")["cells"]
        assert status == "pass", (name, detail)
    assert {"depth", "frozen_norm", "scaling"} <= set(suites)  # the three a re-implementation had failed
    assert rows(report, "suite depth")["cells"][1] == (
        "12 cell(s) in 4 row(s) x 6 column(s); every task, backbone and policy registered, every option valid")


SUITE = '''
    from fpt_bench import SuiteCell, SuiteSpec, hookimpl

    GOOD = SuiteSpec(name="good", description="two rows, reference numbers for some columns only",
                     cells=[SuiteCell(task="bit_xor", label="fpt"), SuiteCell(task="bit_memory", label="fpt"),
                            SuiteCell(task="bit_xor", policy="full", label="full")],
                     reference={"fpt": {"bit_xor": 100.0}, "full": {}})
    DRIFTED = SuiteSpec(name="drifted", description="reference rows edited after it was made",
                        cells=[SuiteCell(task="bit_xor", label="fpt")], reference={"fpt": {"bit_xor": 100.0}})
    DRIFTED.reference["no_such_row"] = {"bit_xor": 50.0}

    @hookimpl
    def fpt_bench_register_suites(registry):
        registry.add(GOOD, name=GOOD.name)
        registry.add(DRIFTED, name=DRIFTED.name)
'''


def test_a_suite_is_checked_by_the_suite_specs_own_rules(plugin_site, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    plugin_site(fake_dist(tmp_path, "fpt-bench-suites", {"mysuites": "my_suites"}, {"my_suites": SUITE}))
    assert main(["check-plugin", "mysuites", "--json"]) == 1
    results = {r["component"]: (r["status"], r["detail"]) for r in json.loads(capsys.readouterr().out)["results"]}
    assert results["suite good"][0] == "pass"  # a row with numbers for only some of its columns is fine
    assert results["suite drifted"] == (
        "fail", "SuiteSpec refuses it: reference names row 'no_such_row', which no cell has (rows: fpt)")


def test_a_reference_number_must_be_finite() -> None:
    with pytest.raises(ValueError, match=r"reference\['fpt'\]\['bit_xor'\] is nan: a paper number is finite"):
        SuiteSpec(name="nan", description="", cells=[SuiteCell(task="bit_xor", label="fpt")],
                  reference={"fpt": {"bit_xor": float("nan")}})
