"""Issue 13's ablations: each variant builds, generates, and changes exactly what it claims; the pipeline
runs end to end at smoke scale and its results file validates; the committed results validate too."""

import copy
import json
import random
from pathlib import Path

import pytest
import torch

from qwenvl_study.patching import patchify, preprocess_image, unpatchify
from qwenvl_study.rope import mrope_position_ids, vision_position_ids
from qwenvl_study.train import ablations as A
from qwenvl_study.train.course import COURSE_MEDIA, collate, encode_messages, encode_sample
from qwenvl_study.train.data import make_sample, make_text_sample, messages_for, random_scene
from qwenvl_study.train.dense import dense_example
from qwenvl_study.train.loop import STAGE_SEED, TrainConfig, train
from qwenvl_study.train.vocab import build_vocab, course_tokenizer

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "experiments" / "ablations" / "results.json"


@pytest.fixture(scope="module")
def tv():
    tok = course_tokenizer()
    return tok, build_vocab(tok)


def _model(variant, tv, seed=0):
    tok, vocab = tv
    cfg = A.ablation_config(variant, seed, "unused", smoke=True)
    return cfg.build(vocab), cfg


def _batch(tv, media, samples):
    tok, vocab = tv
    return collate([encode_sample(s, tok, vocab, media) for s in samples], vocab.special("<|endoftext|>"))


SAMPLES = [("count", 0), ("find", 1), ("direction", 2)]


@pytest.mark.parametrize("variant", A.VARIANTS)
def test_every_variant_builds_forwards_and_generates(variant, tv):
    tok, vocab = tv
    model, cfg = _model(variant, tv)
    batch = _batch(tv, cfg.media, [make_sample(21, i, t) for t, i in SAMPLES])
    batch.pop("labels")
    logits = model(**batch)
    assert logits.shape == (*batch["input_ids"].shape, vocab.size) and torch.isfinite(logits).all()
    # greedy generation, batched and left-padded; the KV-cached decode equals recomputing every position
    convs = [messages_for(s.media, s.question, media_options=cfg.media.options(s.is_video))
             for s in (make_sample(22, 0, "find"), make_sample(22, 1, "direction"))]
    examples = [encode_messages(c, tok, vocab, add_generation_prompt=True, media=cfg.media) for c in convs]
    from qwenvl_study.train.evaluate import _left_pad

    inputs = _left_pad(examples, vocab.special("<|endoftext|>"))
    cached = model.generate(**inputs, max_new_tokens=6)
    uncached = model.generate(**inputs, max_new_tokens=6, use_cache=False)
    assert cached.shape[0] == 2 and torch.equal(cached, uncached)


def test_rope1d_positions_are_arange_on_three_rows(tv):
    model, cfg = _model("rope1d", tv)
    base, _ = _model("baseline", tv)
    batch = _batch(tv, cfg.media, [make_sample(23, i, t) for t, i in SAMPLES])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    pos, deltas = model.positions(ids, mask, batch.get("image_grid_thw"), batch.get("video_grid_thw"))
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        for row in range(3):
            assert torch.equal(pos[row, b, :n], torch.arange(n))
        assert int(deltas[b]) == n - ids.shape[1]
    mrope, _ = base.positions(ids, mask, batch.get("image_grid_thw"), batch.get("video_grid_thw"))
    assert not torch.equal(pos, mrope)  # with vision tokens the two rules differ (M-RoPE: 2D grids)
    assert int(mrope[:, 0].max()) < int(pos[:, 0].max())  # M-RoPE's ids stay smaller


def test_rope1d_is_mrope_on_text_only_batches(tv):
    """The reason stage 0 is shared with the baseline: on text, 1D ids are M-RoPE ids bit for bit
    (right padding as training batches, left padding as generation)."""
    tok, vocab = tv
    batch = _batch(tv, COURSE_MEDIA, [make_text_sample(STAGE_SEED, i) for i in range(5)])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert (mask == 0).any()
    for m, x in ((mask, ids), (mask.flip(-1), ids.flip(-1))):
        ours, d1 = A.positions_1d(m)
        ref, d2 = mrope_position_ids(x, attention_mask=m)
        assert torch.equal(ours, ref) and torch.equal(d1, d2)


def test_vit_abs_pos_has_the_table_and_no_rotary(tv):
    model, _ = _model("vit_abs_pos", tv)
    base, _ = _model("baseline", tv)
    visual = model.visual
    S, d = A.ABS_TABLE_SIDE, model.config.vision.embed_dim
    assert tuple(visual.pos_embed.shape) == (S * S, d) and "visual.pos_embed" in model.state_dict()
    assert "visual.pos_embed" not in base.state_dict()
    cos, sin = visual.rotary_pos_emb(torch.tensor([[1, 4, 6]]))
    assert torch.equal(cos, torch.ones_like(cos)) and torch.equal(sin, torch.zeros_like(sin))
    # an S x S grid reads the table itself (in the merge order); another grid an interpolation of it
    emb = visual.grid_embeddings(torch.tensor([[1, S, S]]))
    rc = vision_position_ids([[1, S, S]])
    assert torch.allclose(emb, visual.pos_embed[rc[:, 0] * S + rc[:, 1]], atol=1e-6)
    assert visual.grid_embeddings(torch.tensor([[2, 4, 12]])).shape == (96, d)
    # without the table nothing tells the tower where a patch is: swapping two patches of one image
    # swaps their outputs (the baseline's 2D-RoPE does not allow that)
    pixels, grid = preprocess_image(make_sample(24, 0, "count").media, max_pixels=COURSE_MEDIA.image_max_pixels)
    far = int((pixels - pixels[0]).abs().sum(-1).argmax())  # a patch unlike patch 0 (not two background patches)
    perm = torch.arange(pixels.shape[0])
    perm[[0, far]] = perm[[far, 0]]
    for tower, equivariant in ((copy.deepcopy(visual), True), (copy.deepcopy(base.visual), False)):
        with torch.no_grad():
            for block in tower.blocks:  # sharp attention, so that positions matter at all
                block.attn.qkv.weight.mul_(100)
            if equivariant:
                tower.pos_embed.zero_()
        a = tower(pixels, grid, return_hidden_states=True).last_hidden_state
        b = tower(pixels[perm], grid, return_hidden_states=True).last_hidden_state
        assert torch.allclose(a[perm], b, atol=1e-5) == equivariant
    # every weight but the table starts where the baseline's does
    sd, bsd = model.state_dict(), base.state_dict()
    assert all(torch.equal(sd[k], bsd[k]) for k in bsd)


def test_fixed_224_grid_is_constant(tv):
    _, cfg = _model("fixed_224", tv)
    media = cfg.media
    assert isinstance(media, A.FixedSizeMedia) and media.image_side == 112 and media.video_side == 56
    grids = set()
    for i in range(6):
        s = make_sample(25, i, "count", ratio=(3, 6) if i % 2 else (1, 3))
        vision = media.vision_inputs(messages_for(s.media, s.question, media_options=media.options(False)))
        grids.add(tuple(vision["image_grid_thw"][0].tolist()))
    assert grids == {(1, 8, 8)}
    v = make_sample(25, 0, "direction")
    vision = media.vision_inputs(messages_for(v.media, v.question, media_options=media.options(True)))
    assert tuple(vision["video_grid_thw"][0].tolist()) == (len(v.media) // 2, 4, 4)
    base = COURSE_MEDIA.vision_inputs(messages_for(s.media, s.question, media_options=media.options(False)))
    assert tuple(base["image_grid_thw"][0].tolist()) != (1, 8, 8)  # the baseline keeps the aspect ratio


def test_no_merge_gives_four_times_the_pads_in_raster_order(tv):
    tok, vocab = tv
    model, cfg = _model("no_merge", tv)
    assert model.config.vision.spatial_merge_size == 1 and cfg.media.merge_size == 1
    s = make_sample(26, 0, "find")
    enc = {}
    for media in (COURSE_MEDIA, cfg.media):
        conv = messages_for(s.media, s.question, media_options=media.options(False))
        enc[media.merge_size] = encode_messages(conv, tok, vocab, add_generation_prompt=True, media=media)
    pads = {m: int((e.input_ids == model.config.image_token_id).sum()) for m, e in enc.items()}
    assert pads[1] == 4 * pads[2]
    grid = enc[1].image_grid_thw
    assert torch.equal(grid, enc[2].image_grid_thw)  # the same pixels and patch grid
    # the rows are the processor's patches in raster order: patchify with merge 1 of the same frames
    t, h, w = grid[0].tolist()
    frames = unpatchify(enc[2].pixel_values, (t, h, w))  # [2t, 3, 14h, 14w]
    assert torch.equal(patchify(frames, merge_size=1)[0], enc[1].pixel_values)
    # M-RoPE ids over the patch grid itself: h rows and w columns of tokens (the merged model: h/2, w/2)
    for m, e in enc.items():
        ids = e.input_ids[None]
        pos, _ = (model if m == 1 else _model("baseline", tv)[0]).positions(ids, torch.ones_like(ids), e.image_grid_thw)
        img = pos[:, 0, ids[0] == model.config.image_token_id]  # [3, pads]
        assert (int(img[1].max() - img[1].min()) + 1, int(img[2].max() - img[2].min()) + 1) == (h // m, w // m)
    # the projector maps each patch to the LLM width
    feats = model.visual(enc[1].pixel_values, grid)
    assert feats.shape == (t * h * w, model.config.text.hidden_size)
    # stage 0v's per-patch targets follow the same permutation as the pixels
    scene = random_scene(random.Random("27:0"))
    a, b = dense_example(scene), dense_example(scene, media=cfg.media)
    assert torch.equal(A.merge_to_raster(a[0], a[1]), b[0])
    assert torch.equal(A.merge_to_raster(a[2], a[1]), b[2]) and torch.equal(A.merge_to_raster(a[4], a[1]), b[4])


def test_no_video_mix_has_no_direction():
    stages = A.variant_stages("no_video")
    base = A.variant_stages("baseline")
    assert any("direction" in s.mix for s in base)
    assert any(b.lead == "direction" and b.lead_steps > 0 for b in base)  # stage 3's lead
    for s, b in zip(stages, base):
        assert "direction" not in s.mix and s.steps == b.steps and s.batch_size == b.batch_size
        assert {k: v for k, v in b.mix.items() if k != "direction"} == s.mix
        assert s.lead != "direction" and s.lead_steps == 0  # the lead's steps are image chats'
    scaled = A.variant_stages("baseline", steps_scale=0.1)
    lead = next(s for s in scaled if s.lead)
    full = next(s for s in base if s.lead)
    assert lead.lead_steps == round(full.lead_steps * 0.1)
    assert lead.steps - lead.lead_steps == round((full.steps - full.lead_steps) * 0.1)  # both parts scaled
    vision = [s for s in stages if s.data == "vision"]
    tasks = {make_sample(STAGE_SEED + s.index, i, mix=s.mix).task for s in vision for i in range(60)}
    assert tasks == {"count", "find", "describe"}


def test_steps_scale_seeds_and_fingerprints():
    half = A.variant_stages("baseline", seed=2, steps_scale=0.5)
    assert [s.steps for s in half] == [max(1, round(s.steps * 0.5)) for s in A.ABLATION_STAGES]
    assert [s.seed for s in half] == [(STAGE_SEED + s.index if s.seed is None else s.seed) + 2000 for s in A.ABLATION_STAGES]
    assert A.variant_stages("baseline", seed=0) == A.ABLATION_STAGES  # seed 0: the ablation recipe itself
    base = A.ablation_config("baseline", 1, "x")
    plain = TrainConfig(out="x", seed=1, stages=base.stages, lora=None, eval_n=0, workers=1)
    assert [base.fingerprint(i) for i in range(len(A.ABLATION_STAGES))] == [plain.fingerprint(i) for i in range(len(A.ABLATION_STAGES))]
    for v in A.VARIANTS[1:]:
        cfg = A.ablation_config(v, 1, "x")
        shared = A.shared_stages(v, cfg.stages)
        for i in range(len(A.ABLATION_STAGES)):
            assert (cfg.fingerprint(i) == base.fingerprint(i)) == (i < len(shared)), (v, i)
    with pytest.raises(ValueError, match="unknown variant"):
        A.ablation_config("no_rope", 0, "x")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablations")
    results = out / "results.json"
    argv = ["--smoke", "--variants", "baseline,rope1d", "--seeds", "0", "--steps-scale", "0.002", "--eval-n", "2",
            "--out", str(out / "runs"), "--results", str(results), "--no-progress"]
    assert A.main(argv) == 0
    return out, json.loads(results.read_text())


def test_smoke_pipeline_writes_results_that_validate(smoke):
    out, doc = smoke
    A.validate_results(doc)
    assert [(r["variant"], r["seed"]) for r in doc["runs"]] == [("baseline", 0), ("rope1d", 0)]
    assert "SMOKE SCALE" in doc["notes"] and "NOT evidence" in doc["notes"] and "112x112" in doc["notes"]
    for r in doc["runs"]:
        # every stage's steps x 0.002 (at least 1); stage 3's lead and the rest of its steps each scaled
        expected = sum(max(1, round(s.lead_steps * 0.002)) + max(1, round((s.steps - s.lead_steps) * 0.002))
                       if s.lead_steps else max(1, round(s.steps * 0.002)) for s in A.ABLATION_STAGES)
        assert r["steps"] == expected
        assert set(r["metrics"]) == set(A.SPLITS) and set(r["metrics"]["longer_video"]) == {"direction"}
        assert (out / "runs" / f"{r['variant']}-s0" / "stage3.safetensors").is_file()
    assert doc["runs"][1]["shared_stages"] == ["stage0", "stage0v"]
    assert A.summarize(doc)["rope1d"]["n"] == 1
    assert A.verdict(doc, "rope1d")[0] == "inconclusive"  # one seed: no spread to judge by


def test_shared_stages_equal_training_them_again(smoke, tmp_path):
    """Stage 0 and 0v of rope1d, trained here instead of copied, are the baseline's weights bit for bit."""
    from safetensors.torch import load_file

    out, _ = smoke
    cfg = A.ablation_config("rope1d", 0, tmp_path, steps_scale=0.002, smoke=True, progress=False)
    cfg.stages = cfg.stages[:2]
    train(cfg)
    for key in ("stage0", "stage0v"):
        mine, theirs = load_file(tmp_path / f"{key}.safetensors"), load_file(out / "runs" / "baseline-s0" / f"{key}.safetensors")
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    meta = json.loads((out / "runs" / "rope1d-s0" / "stage0v.json").read_text())
    assert meta["fingerprint"] == cfg.fingerprint(1)


def test_rerun_reads_finished_runs_back(smoke, capsys):
    out, doc = smoke
    again = out / "again.json"
    A.main(["--smoke", "--variants", "baseline,rope1d", "--seeds", "0", "--steps-scale", "0.002", "--eval-n", "2",
            "--out", str(out / "runs"), "--results", str(again), "--no-progress"])
    runs = json.loads(again.read_text())["runs"]
    assert runs == doc["runs"]
    assert "resumed" not in capsys.readouterr().out  # not even the checkpoints are loaded


def test_committed_results_validate():
    if not COMMITTED.is_file():
        pytest.skip(f"{COMMITTED} not committed yet")
    doc = json.loads(COMMITTED.read_text())
    A.validate_results(doc)
    variants = {r["variant"] for r in doc["runs"]}
    assert "baseline" in variants and len(variants) >= 2
    # the committed runs were trained with ABLATION_STAGES at the recorded scale (a rerun reproduces them)
    scaled = {s.key: s.steps for s in A.variant_stages("baseline", steps_scale=doc["scale"])}
    assert all(r["stage_steps"] == scaled for r in doc["runs"] if r["variant"] == "baseline"), scaled


def _valid():
    metrics = {name: {t: 0.5 for t in s.tasks} for name, s in A.SPLITS.items()}
    run = {"variant": "baseline", "seed": 0, "steps": 10, "train_seconds": 1.0, "visual_tokens_per_image": 12.0,
           "metrics": metrics}
    return {"runs": [run, {**copy.deepcopy(run), "variant": "no_merge"}], "scale": 1.0, "eval_n": 100, "notes": ""}


@pytest.mark.parametrize("break_it, match", [
    (lambda d: d.pop("eval_n"), "missing top-level key 'eval_n'"),
    (lambda d: d["runs"][0].pop("metrics"), r"runs\[0\]: missing key 'metrics'"),
    (lambda d: d["runs"][1]["metrics"]["larger"].update(count=1.2), r"no_merge seed 0\): metrics.larger.count = 1.2 is outside \[0, 1\]"),
    (lambda d: d["runs"][0]["metrics"]["in_dist"].update(find=-0.1), "outside"),
    (lambda d: d["runs"][0]["metrics"]["aspect"].pop("direction"), "must hold exactly"),
    (lambda d: d["runs"][0]["metrics"].pop("longer_video"), "lack the split 'longer_video'"),
    (lambda d: d["runs"][0].update(variant="rope2d"), "variant 'rope2d'"),
    (lambda d: d["runs"][1].update(variant="baseline"), "appear twice"),
    (lambda d: d["runs"][0].update(steps=0), "steps"),
    (lambda d: d["runs"][0].update(visual_tokens_per_image=float("nan")), "visual_tokens_per_image"),
    (lambda d: d.update(runs=[]), "non-empty"),
    (lambda d: d.update(scale="1"), "scale"),
])
def test_validate_results_rejects_broken_files(break_it, match):
    doc = _valid()
    A.validate_results(doc)
    break_it(doc)
    with pytest.raises(ValueError, match=match):
        A.validate_results(doc)


def test_verdicts_follow_the_stated_rule():
    def doc(base, var, variant="fixed_224", spread=0.01):
        runs = []
        for name, value in (("baseline", base), (variant, var)):
            for seed in range(3):
                metrics = {n: {t: value + spread * (seed - 1) for t in s.tasks} for n, s in A.SPLITS.items()}
                runs.append({"variant": name, "seed": seed, "steps": 1, "train_seconds": 1.0,
                             "visual_tokens_per_image": 16.0, "metrics": metrics})
        return {"runs": runs, "scale": 1.0, "eval_n": 400, "notes": ""}

    assert A.verdict(doc(0.7, 0.4), "fixed_224")[0] == "reproduced at this scale"
    assert A.verdict(doc(0.4, 0.7), "fixed_224")[0] == "not reproduced"
    assert A.verdict(doc(0.5, 0.51), "fixed_224")[0] == "inconclusive"  # within the margin
    assert A.verdict(doc(0.6, 0.3, spread=0.3), "fixed_224")[0] == "inconclusive"  # seeds too spread
    assert A.verdict(doc(0.01, 0.0), "fixed_224")[0] == "inconclusive"  # at or below chance everywhere
    assert A.verdict(doc(0.6, 0.6, "no_merge"), "no_merge")[0] == "reproduced at this scale"
    assert A.verdict(doc(0.4, 0.7, "no_merge"), "no_merge")[0] == "not reproduced"
    d = doc(0.7, 0.4)
    d["runs"] = [r for r in d["runs"] if r["seed"] == 0]
    assert A.verdict(d, "fixed_224")[0] == "inconclusive"


def test_figures_draw_every_claim(tmp_path):
    from PIL import Image

    from qwenvl_study.course import figures as viz

    doc = _valid()
    doc["runs"] = [{**copy.deepcopy(doc["runs"][0]), "variant": v, "seed": s} for v in A.VARIANTS for s in (0, 1)]
    for v in A.CLAIMS:
        fig = viz.plot_claim(doc, v)
        ax = fig.axes[0]
        assert ax.get_ylabel() and ax.get_xlabel() and v in ax.get_title()
        assert len(ax.patches) == 2 * len(A.KEY_CELLS[v])  # two bars per key cell
        viz.savefig(fig, tmp_path / f"{v}.png")
    path = viz.savefig(viz.plot_ablation_overview(doc), tmp_path / "overview.png")
    with Image.open(path) as png:
        assert min(png.info["dpi"]) >= 109.5
    assert A.find_results(ROOT) == COMMITTED or not COMMITTED.is_file()
