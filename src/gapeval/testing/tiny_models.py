"""Tiny random checkpoints of real model classes, built in-process and saved like a hub checkpoint.

They run through the very code paths the full-size models take (``from_pretrained``, processors, chat
templates, ``generate``, pipelines), in seconds on a CPU, and download nothing: tokenizers are byte-level
BPE synthesised with ``tokenizers``, weights are random from a small config. Use them to test an adapter
or a machine end to end (``python -m gapeval.testing.tiny_models janus DIR``).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Words of the shapes world, so the byte-level BPE has merges for the prompts it will see.
_CORPUS = [
    "a red circle left of a blue square above a green triangle",
    "how many yellow stars are there? answer with a number",
    "which option is correct? (A) (B) (C) (D) draw an image of purple hexagons",
]


def byte_tokenizer(special: list[str], *, vocab_size: int = 320, **named: str) -> Any:
    """A byte-level BPE tokenizer (``PreTrainedTokenizerFast``) with ``special`` tokens.

    Args:
        special: Special tokens, added first (``<pad>``, ``<bos>``, ``<eos>`` must be among them).
        vocab_size: Target vocabulary size before special tokens.
        **named: Extra named special tokens (``image_token="<image>"``) exposed as tokenizer attributes.

    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        extra_special_tokens=named,
    )


_CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}{{ IMAGE }}{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>:{% endif %}"
)


def chat_template(image_token: str) -> str:
    """A minimal chat template placing ``image_token`` where each image goes."""
    return _CHAT.replace("{{ IMAGE }}", image_token)


def tiny_llama(tok: Any, hidden: int = 32) -> dict[str, Any]:
    """A two-layer Llama text config over ``tok``'s vocabulary and special tokens."""
    return {
        "model_type": "llama",
        "vocab_size": len(tok),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 1024,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


def tiny_janus(folder: Path, seed: int = 0, trained_heads: bool = False) -> Path:
    """A tiny ``JanusForConditionalGeneration`` + ``JanusProcessor`` (32x32 images, 16 image tokens).

    With ``trained_heads`` the image-generation head is rescaled to the spread of a trained layer (std
    1/sqrt(fan in)) instead of the initialiser's 0.02: at 0.02 its logits are nearly uniform and the
    gradient through it too small for a few LoRA steps to move the image-token loss.
    """
    import torch
    from transformers import (
        JanusConfig,
        JanusForConditionalGeneration,
        JanusImageProcessorPil,
        JanusProcessor,
    )

    tok = byte_tokenizer(
        ["<pad>", "<bos>", "<eos>", "<image_placeholder>", "<begin_of_image>", "<end_of_image>"],
        image_token="<image_placeholder>",
        boi_token="<begin_of_image>",
        eoi_token="<end_of_image>",
    )
    hidden, image, patch = 32, 32, 8
    n_image = (image // patch) ** 2
    config = JanusConfig(
        text_config=tiny_llama(tok, hidden),
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": image,
            "patch_size": patch,
            "projection_dim": hidden,  # must equal the text hidden size
            "num_image_tokens": n_image,  # must equal (image_size // patch_size) ** 2
            "mlp_ratio": 2.0,
            "depth": 1,
        },
        vq_config={
            "embed_dim": 8,
            "num_embeddings": 64,
            "latent_channels": 32,
            "base_channels": 32,  # GroupNorm(32) needs a multiple of 32
            "channel_multiplier": [1, 1, 2, 2],  # 3 upsamplings: 4x4 tokens -> 32x32 pixels
            "num_res_blocks": 1,
            "projection_dim": hidden,
            "image_token_embed_dim": hidden,
            "num_hidden_layers": 1,
        },
        image_token_id=tok.convert_tokens_to_ids("<image_placeholder>"),
    )
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config).eval()
    if trained_heads:
        head = model.model.generation_head
        with torch.no_grad():
            for layer in (head.proj_out, head.vision_head):
                layer.weight.mul_(1 / (layer.weight.std() * layer.weight.shape[1] ** 0.5))
    processor = JanusProcessor(
        image_processor=JanusImageProcessorPil(size={"height": image, "width": image}),
        tokenizer=tok,
        chat_template=chat_template("<image_placeholder>"),
        num_image_tokens=n_image,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_vlm(folder: Path, seed: int = 0) -> Path:
    """A tiny LLaVA (``LlavaForConditionalGeneration``: CLIP vision tower + Llama) with its processor."""
    import torch
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = byte_tokenizer(["<pad>", "<bos>", "<eos>", "<image>"], image_token="<image>")
    image, patch, hidden = 32, 8, 32
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image,
            "patch_size": patch,
            "projection_dim": 32,
        },
        text_config=tiny_llama(tok, hidden),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": image}, crop_size={"height": image, "width": image}
        ),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=chat_template("<image>"),
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


#: Emu3's special tokens, by the names its processor and model look up.
_EMU3_NAMED = {
    "image_token": "<image>",
    "boi_token": "<|image start|>",
    "eoi_token": "<|image end|>",
    "image_wrapper_token": "<|image token|>",
    "eof_token": "<|extra_201|>",
}
_EMU3_EOL = "<|extra_200|>"


def tiny_emu3(folder: Path, seed: int = 0, codebook: int = 32) -> Path:
    """A tiny ``Emu3ForConditionalGeneration`` + ``Emu3Processor`` (4x4 image tokens -> 32x32 pixels).

    One checkpoint serves as both Chat and Gen (``emu3:DIR,DIR``); the visual tokens are
    ``<|visual token NNNNNN|>`` in the vocabulary, mapped to codebook entries by ``vocabulary_map``.
    """
    import torch
    from transformers import Emu3Config, Emu3ForConditionalGeneration, Emu3ImageProcessor, Emu3Processor

    visual = [f"<|visual token {i:06d}|>" for i in range(codebook)]
    special = ["<pad>", "<bos>", "<eos>", *_EMU3_NAMED.values(), _EMU3_EOL, *visual]
    tok = byte_tokenizer(
        special,
        image_token=_EMU3_NAMED["image_token"],
        boi_token=_EMU3_NAMED["boi_token"],
        eoi_token=_EMU3_NAMED["eoi_token"],
        image_wrapper_token=_EMU3_NAMED["image_wrapper_token"],
        eof_token=_EMU3_NAMED["eof_token"],
    )
    vocab_map = dict(tok.get_vocab())
    config = Emu3Config(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 1024,
            "pad_token_id": tok.pad_token_id,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
        },
        vq_config={
            "codebook_size": codebook,
            "temporal_downsample_factor": 1,
            "base_channels": 32,
            "channel_multiplier": [1, 2, 2, 1],  # three downsamplings: 32x32 pixels <-> 4x4 tokens
            "num_res_blocks": 1,
            "hidden_size": 32,
            "attn_resolutions": [],
        },
        vocabulary_map=vocab_map,
    )
    torch.manual_seed(seed)
    model = Emu3ForConditionalGeneration(config).eval()
    processor = Emu3Processor(
        image_processor=Emu3ImageProcessor(min_pixels=32 * 32, max_pixels=32 * 32, spatial_factor=8),
        tokenizer=tok,
        chat_template=chat_template("<image>"),
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


_QWEN_SPECIAL = [
    "<pad>",
    "<bos>",
    "<eos>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _qwen_image_parts(seed: int) -> dict[str, Any]:
    """Tiny Qwen-Image components: MMDiT transformer, Qwen-Image VAE, Qwen2.5-VL text encoder, scheduler."""
    import torch
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = byte_tokenizer(_QWEN_SPECIAL, image_token="<|image_pad|>", video_token="<|video_pad|>")
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    z = 4
    vae = AutoencoderKLQwenImage(
        base_dim=8,  # small: edit pipelines resize every input to about 1024x1024 before encoding
        z_dim=z,
        dim_mult=[1, 2, 4, 4],  # three downsamplings, as the real VAE: its mid-block attention stays small
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * z,
        latents_std=[1.0] * z,
    )
    ids = {
        name: tok.convert_tokens_to_ids(t)
        for name, t in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1e6,
            "vocab_size": len(tok),
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        hidden_size=16,
        vocab_size=len(tok),
        **ids,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": Qwen2_5_VLForConditionalGeneration(config).eval(),
        "tokenizer": tok,
        "scheduler": FlowMatchEulerDiscreteScheduler(),
    }


def tiny_qwen_image(folder: Path, seed: int = 0) -> Path:
    """A tiny ``QwenImagePipeline`` (text-to-image)."""
    from diffusers import QwenImagePipeline

    QwenImagePipeline(**_qwen_image_parts(seed)).save_pretrained(folder)
    return folder


@functools.cache
def image_only_qwen_processor() -> type[Any]:
    """``Qwen2VLProcessor`` without its video processor.

    transformers' video processors need torchvision, and no torchvision wheel matches the CPU torch this
    project pins, so the tiny edit pipeline carries a processor that handles images and text only (the
    code path ``QwenImageEditPipeline`` uses). Real checkpoints load the stock processor.
    """
    from transformers import Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):  # type: ignore[misc]  # transformers is Any to mypy
        def __init__(
            self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kw: Any
        ):
            self.image_token = tokenizer.image_token
            self.video_token = tokenizer.video_token
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return ImageOnlyQwen2VLProcessor


def tiny_qwen_edit(folder: Path, seed: int = 0) -> Path:
    """A tiny ``QwenImageEditPipeline`` (image + text -> image); load it with :class:`TinyQwenEdit`."""
    from diffusers import QwenImageEditPipeline
    from transformers import Qwen2VLImageProcessorPil

    parts = _qwen_image_parts(seed)
    processor = image_only_qwen_processor()(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=28 * 28 * 16),
        tokenizer=parts["tokenizer"],
    )
    QwenImageEditPipeline(processor=processor, **parts).save_pretrained(folder)
    # Name the stock class, as a real checkpoint does: with torchvision installed, ``diffusers:FOLDER``
    # loads it as is; without, :class:`TinyQwenEdit` hands the image-only processor over.
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2))
    return folder


@functools.cache
def _tiny_edit_adapter() -> type[Any]:
    from gapeval.models.diffusion import DiffusersModel, DiffusersSettings

    class TinyQwenEdit(DiffusersModel):
        """The ``diffusers`` adapter for a :func:`tiny_qwen_edit` folder, handing diffusers its processor.

        Everything else (``from_pretrained`` of every other component, the pipeline call, seeds, batching
        by input size) is the stock :class:`~gapeval.models.diffusion.DiffusersModel`.
        """

        @classmethod
        def load_pipeline(cls, arg: str, settings: DiffusersSettings, dtype: Any) -> Any:
            from diffusers import QwenImageEditPipeline
            from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

            folder = Path(arg)
            processor = image_only_qwen_processor()(
                image_processor=Qwen2VLImageProcessorPil.from_pretrained(folder / "processor"),
                tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
            )
            return QwenImageEditPipeline.from_pretrained(folder, processor=processor, dtype=dtype)

    return TinyQwenEdit


def __getattr__(name: str) -> Any:
    # ``py:gapeval.testing.tiny_models:TinyQwenEdit`` resolves here, importing diffusers only then.
    if name == "TinyQwenEdit":
        return _tiny_edit_adapter()
    raise AttributeError(name)


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "janus": tiny_janus,
    "emu3": tiny_emu3,
    "vlm": tiny_vlm,
    "qwen-image": tiny_qwen_image,
    "qwen-image-edit": tiny_qwen_edit,
}


def main(argv: list[str] | None = None) -> int:
    """``python -m gapeval.testing.tiny_models KIND DIR``: build one tiny checkpoint."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in BUILDERS:
        print(f"usage: python -m gapeval.testing.tiny_models {{{','.join(BUILDERS)}}} DIR", file=sys.stderr)
        return 2
    print(BUILDERS[args[0]](Path(args[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
