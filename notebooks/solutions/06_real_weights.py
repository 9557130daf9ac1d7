"""Solutions to the exercises of notebook 06 "Real weights on any machine"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/06_real_weights.py`` works too).
"""

import torch

import qwenvl_study as qs

with torch.device("meta"):  # shapes only: no memory, no weights
    model = qs.Qwen2VL(qs.QWEN2_VL_2B)


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# 1. ViT: patch embedding 1176 * 1280 = 1,505,280 (no bias); a block 19,677,440 (norms 5,120, qkv 4,919,040,
#    proj 1,639,680, fc1 6,558,720, fc2 6,554,880); merger 34,087,936 -> 1,505,280 + 32 * 19,677,440 + 34,087,936
#    = 665,271,296. LLM: embedding 151,936 * 1536 = 233,373,696; a layer's attention q 1536*1536 + 1536 = 2,360,832,
#    k and v 1536*256 + 256 = 393,472 each, o 1536*1536 = 2,359,296 -> 5,507,072; its MLP 3 * 1536 * 8960 =
#    41,287,680; its two RMSNorms 3,072 -> 46,797,824 per layer, 1,310,339,072 for 28; final norm 1,536; lm_head tied
#    (it *is* the embedding): 0 -> 1,543,714,304. Whole model 2,208,985,600.
vit = {"patch embedding": 1176 * 1280, "one block": 19_677_440, "merger": 34_087_936}
vit["ViT"] = vit["patch embedding"] + 32 * vit["one block"] + vit["merger"]
attn = (1536 * 1536 + 1536) + 2 * (1536 * 256 + 256) + 1536 * 1536
mlp = 3 * 1536 * 8960
llm = {"embedding": 151_936 * 1536, "attention": attn, "MLP": mlp, "one layer": attn + mlp + 2 * 1536, "final norm": 1536}
llm["LLM"] = llm["embedding"] + 28 * llm["one layer"] + llm["final norm"]
assert (vit["ViT"], llm["one layer"], llm["LLM"]) == (665_271_296, 46_797_824, 1_543_714_304)
layer = model.model.layers[0]
measured = {"patch embedding": count(model.visual.patch_embed), "one block": count(model.visual.blocks[0]),
            "merger": count(model.visual.merger), "ViT": count(model.visual),
            "embedding": count(model.model.embed_tokens), "attention": count(layer.self_attn), "MLP": count(layer.mlp),
            "one layer": count(layer), "final norm": count(model.model.norm), "LLM": count(model.model)}
assert measured == {**vit, **llm}
assert not hasattr(model, "lm_head") and count(model) == vit["ViT"] + llm["LLM"] == 2_208_985_600
assert qs.count_parameters(qs.QWEN2_VL_2B) == (vit["ViT"], llm["LLM"], 2_208_985_600)
print("1. " + ", ".join(f"{k} {v:,}" for k, v in {**vit, **llm}.items()) + f"; total {count(model):,}")

# 2. Tensors: a ViT block has 12 (norm1, norm2, qkv, proj, fc1, fc2: weight + bias each), the merger 6 (ln_q, mlp.0,
#    mlp.2), the patch embedding 1 -> 1 + 32 * 12 + 6 = 391; a decoder layer 12 (q, k, v weight + bias, o weight,
#    gate, up, down, two norms) -> 1 (embedding) + 28 * 12 + 1 (final norm) = 338; 729 in all. bf16: 2 bytes each,
#    4,417,971,200 B (4.11 GiB); fp32: 8,835,942,400 B (8.23 GiB) for one copy, twice that for ours + transformers'.
state = model.state_dict()
visual = [k for k in state if k.startswith("visual.")]
assert (len(visual), len(state) - len(visual), len(state)) == (391, 338, 729)
assert 2 * count(model) == 4_417_971_200 and 4 * count(model) == 8_835_942_400
print(f"2. {len(visual)} + {len(state) - len(visual)} = {len(state)} tensors; bf16 {2 * count(model):,} B "
      f"({2 * count(model) / 2**30:.2f} GiB), fp32 {4 * count(model) / 2**30:.2f} GiB")

# 3. 8 significant bits: just above 1 the spacing is 2^-7 = 0.0078125 (torch's eps); just above 1536 = 1.5 * 2^10 it
#    is 2^(10 - 7) = 8, so 1537 -> 1536 and 1541 -> 1544. Rounding to nearest errs by at most half a spacing:
#    2^-8 = 0.39% relative (fp32: 2^-24 = 6e-8). §4b's per-layer differences (a few 1e-3 to 1e-2) are a few such
#    roundings accumulated through the layers.
finfo = torch.finfo(torch.bfloat16)
assert finfo.eps == 2**-7
assert torch.tensor([1537.0, 1541.0]).bfloat16().float().tolist() == [1536.0, 1544.0]
x = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
worst = ((x.bfloat16().float() - x).abs() / x.abs()).max().item()
assert worst <= 2**-8 and worst > 0.9 * 2**-8
print(f"3. bf16 spacing at 1: {finfo.eps} (2^-7), at 1536: 8; 1537 -> 1536, 1541 -> 1544; "
      f"largest relative rounding error {worst:.5f} <= 2^-8 = {2**-8:.5f}")
