"""What the sub-commands share: the model and the edit settings from the parsed options."""

from __future__ import annotations

from ..models.loading import quiet_model_libraries

def editor_from_args(args):
    from ..workflow import RadEditor  # noqa: PLC0415 - torch import only when needed

    quiet_model_libraries()

    return RadEditor.load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        vae_dtype=args.vae_dtype,
        trust_remote_code=args.trust_remote_code,
        local_files_only=True if args.offline else None,
        compile_unet=args.compile,
    )


def settings_from_args(args):
    from ..workflow import EditSettings  # noqa: PLC0415

    guidance = args.guidance
    if guidance and len(guidance) == 1:
        guidance = guidance * len(args.prompt)
    return EditSettings(
        prompts=args.prompt,
        weights=guidance,
        steps=args.steps,
        skip_ratio=args.skip_ratio,
        invert_prompt=args.invert_prompt,
        invert_guidance=args.invert_guidance,
        eta=args.eta,
        seed=args.seed,
        inversion=args.inversion,
        keep_mode=args.keep_mode,
        dilate=args.dilate,
        soft_masks=args.soft_masks,
        detail=args.detail,
        reference_compat=args.reference_compat,
        inversion_batch_size=args.inversion_batch_size,
    )
