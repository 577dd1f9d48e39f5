"""Tiny, randomly initialised pregeneration models, built from configs and saved in the
layouts the real loaders read (no weights can be downloaded here).

- ``build_tiny_yourtts``: a YourTTS-shaped VITS (language embedding, external d-vector speaker
  embeddings from a ResNet speaker encoder) in the folder layout coqui-tts writes.
- ``build_tiny_jukebox``: a 3-level VQ-VAE + top prior with lyrics (encoder-decoder) + two
  upsamplers, saved with ``save_pretrained`` beside its tokenizer vocabularies.
- ``build_tiny_musicgen``: T5 text encoder + EnCodec + MusicGen decoder, and a word-level tokenizer.

Random weights make noise-like audio: that is the real model's output for those weights.
"""

from __future__ import annotations

import json
from pathlib import Path

YOURTTS_LANGUAGES = {"en": 0, "fr-fr": 1, "pt-br": 2}
JUKEBOX_ARTISTS = {"unknown": 0, "alan_jackson.v2": 1, "the_beatles.v2": 2, "nina_simone.v2": 3}
JUKEBOX_GENRES = {"unknown": 0, "country.v2": 1, "rock.v2": 2, "jazz.v2": 3}
JUKEBOX_SAMPLE_RATE = 1000   # tiny, so a fraction of a second is a few hundred codes


def build_tiny_yourtts(out: Path, d_vector_dim: int = 16) -> Path:
    import torch
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.encoder.configs.speaker_encoder_config import SpeakerEncoderConfig
    from TTS.encoder.utils.generic_utils import setup_encoder_model
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    # The speaker encoder YourTTS uses: ResNet on a torch spectrogram, 16 kHz input.
    encoder_config = SpeakerEncoderConfig(
        model_params={"model_name": "resnet", "input_dim": 64, "proj_dim": d_vector_dim,
                      "use_torch_spec": True, "log_input": True},
        audio={"fft_size": 512, "win_length": 400, "hop_length": 160, "sample_rate": 16000,
               "num_mels": 64, "preemphasis": 0.97, "resample": False},
        num_classes_in_batch=2, num_utter_per_class=2, num_loader_workers=0)
    encoder = setup_encoder_model(encoder_config)
    torch.save({"model": encoder.state_dict()}, out / "model_se.pth")
    encoder_config.save_json(str(out / "config_se.json"))
    (out / "language_ids.json").write_text(json.dumps(YOURTTS_LANGUAGES))
    # d-vector file of the training speakers (two, so the model is multi-speaker)
    speakers = {f"clip{i}.wav": {"name": f"speaker{i}",
                                 "embedding": torch.randn(d_vector_dim).tolist()}
                for i in range(2)}
    (out / "speakers.json").write_text(json.dumps(speakers))
    args = VitsArgs(
        hidden_channels=8, hidden_channels_ffn_text_encoder=16, num_heads_text_encoder=2,
        num_layers_text_encoder=1, num_layers_posterior_encoder=1, num_layers_flow=1,
        kernel_size_flow=3, resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]], upsample_rates_decoder=[8, 8],
        upsample_initial_channel_decoder=16, upsample_kernel_sizes_decoder=[16, 16],
        out_channels=129, use_sdp=False,
        use_language_embedding=True, embedded_language_dim=4,
        language_ids_file=str(out / "language_ids.json"),
        use_d_vector_file=True, d_vector_dim=d_vector_dim,
        d_vector_file=[str(out / "speakers.json")],
        speaker_encoder_model_path=str(out / "model_se.pth"),
        speaker_encoder_config_path=str(out / "config_se.json"), init_discriminator=False)
    audio = BaseAudioConfig(sample_rate=16000, fft_size=256, win_length=256, hop_length=64,
                            num_mels=20, mel_fmin=0, mel_fmax=None)
    characters = CharactersConfig(
        characters_class="TTS.tts.models.vits.VitsCharacters", pad="_", eos="&", bos="*",
        blank=None, characters="abcdefghijklmnopqrstuvwxyzàâãçéèêëîïôõùûüœ",
        punctuations=" !'(),-.:;?", phonemes="", is_unique=True, is_sorted=True)
    config = VitsConfig(model_args=args, audio=audio, characters=characters, use_phonemes=False,
                        text_cleaner="multilingual_cleaners", add_blank=True,
                        use_d_vector_file=True, d_vector_file=[str(out / "speakers.json")],
                        d_vector_dim=d_vector_dim)
    model = Vits(config)
    torch.save({"model": model.state_dict()}, out / "model_file.pth")
    config.save_json(str(out / "config.json"))
    return out


def build_tiny_jukebox(out: Path) -> Path:
    import torch
    from transformers.models.deprecated.jukebox import (JukeboxConfig, JukeboxModel,
                                                        JukeboxTokenizer)

    out.mkdir(parents=True, exist_ok=True)
    vocab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:;!?-+'\"()[] \t\n"
    lyrics = {c: i + 1 for i, c in enumerate(vocab)}
    lyrics["<unk>"] = 0
    for name, table in (("artists.json", JUKEBOX_ARTISTS), ("genres.json", JUKEBOX_GENRES),
                        ("lyrics.json", lyrics)):
        (out / name).write_text(json.dumps(table))
    tokenizer = JukeboxTokenizer(out / "artists.json", out / "genres.json", out / "lyrics.json",
                                 version=["v2", "v2", "v2"], n_genres=1, max_n_lyric_tokens=32)
    common = dict(res_downs_t=[1, 1, 1], res_strides_t=[2, 2, 2], music_vocab_size=32,
                  metadata_dims=[len(JUKEBOX_GENRES), len(JUKEBOX_ARTISTS)], timing_dims=8,
                  hidden_size=16, n_heads=2, res_conv_width=8, res_conv_depth=1,
                  res_convolution_multiplier=1, res_dilation_growth_rate=1, num_layers=1,
                  blocks=4, n_ctx=32)
    # top prior: one transformer over lyrics + music codes (as in 1b-lyrics)
    top = dict(common, level=0, is_encoder_decoder=True, attention_pattern="enc_dec_with_lyrics",
               nb_relevant_lyric_tokens=16, lyric_vocab_size=81, alignment_layer=0,
               alignment_head=0)

    def upsampler(level):
        return dict(common, level=level, is_encoder_decoder=False,
                    attention_pattern="raw_column_previous_row_attention",
                    nb_relevant_lyric_tokens=0, lyric_vocab_size=0)

    config = JukeboxConfig(
        vqvae_config=dict(levels=3, res_downs_t=[1, 1, 1], res_strides_t=[2, 2, 2],
                          nb_discrete_codes=32, embed_dim=8, res_conv_width=8, res_conv_depth=1,
                          multipliers=[1, 1, 1], hop_fraction=[0.125, 0.5, 0.5],
                          sample_length=256),
        prior_config_list=[top, upsampler(1), upsampler(2)], nb_priors=3,
        sampling_rate=JUKEBOX_SAMPLE_RATE, timing_dims=8, min_duration=0, max_duration=600.0,
        max_nb_genres=1)
    torch.manual_seed(0)
    model = JukeboxModel(config).eval()
    # transformers 4.57 leaves some of a fresh JukeboxModel's weights as torch.empty memory
    # (the post_init pass skips modules it thinks are initialised): run the modules' own
    # initialisers so the random model is well defined.
    for module in (model.vqvae, *model.priors):
        module.apply(module._init_weights)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_musicgen(out: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (EncodecConfig, MusicgenConfig, MusicgenForConditionalGeneration,
                              PreTrainedTokenizerFast, T5Config)
    from transformers.models.musicgen.configuration_musicgen import MusicgenDecoderConfig

    out.mkdir(parents=True, exist_ok=True)
    words = ["<pad>", "</s>", "<unk>", "ambient", "drone", "with", "soft", "pads", "techno",
             "beat", "dark"]
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(out)
    text = T5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                    num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    # 8 kHz EnCodec with hop 160: 50 frames/s and 4 codebooks, like musicgen-small's 32 kHz one
    audio = EncodecConfig(sampling_rate=8000, audio_channels=1, num_filters=4, hidden_size=16,
                          upsampling_ratios=[8, 5, 4], codebook_size=16, codebook_dim=16,
                          num_lstm_layers=1, target_bandwidths=[0.8], use_causal_conv=True,
                          norm_type="weight_norm", normalize=False, compress=2,
                          residual_kernel_size=3, kernel_size=3, last_kernel_size=3,
                          num_residual_layers=1, dilation_growth_rate=2)
    decoder = MusicgenDecoderConfig(vocab_size=16, max_position_embeddings=256,
                                    num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                                    hidden_size=16, num_codebooks=audio.num_quantizers,
                                    pad_token_id=16, bos_token_id=16, audio_channels=1)
    config = MusicgenConfig.from_sub_models_config(text, audio, decoder)
    config.decoder_start_token_id = 16
    config.pad_token_id = 16
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = 16
    model.generation_config.pad_token_id = 16
    model.generation_config.bos_token_id = 16
    model.save_pretrained(out)
    return out
