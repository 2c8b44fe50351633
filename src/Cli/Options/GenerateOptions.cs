using System.CommandLine;
using NbpEngine.Tokenizer.Text;

namespace NbpEngine.Cli.Options;

/// <summary>nbp-run's own options, declared here once and shown in help under the heading of their group.</summary>
internal sealed class GenerateOptions
{
    // input and output
    public readonly Option<string?> Weights = new("--weights", "-m") { Description = "transformer checkpoint, safetensors (MODEL.md §2; 'nbp-run convert' makes one from a .pt)" };
    public readonly Option<string?> PromptTokens = new("--prompt-tokens") { Description = "prompt file: whitespace-separated model-vocabulary ids, or 'nbp-run encode' output (video codes, shifted here)" };
    public readonly Option<string?> TokensOut = new("--tokens-out") { Description = "file for the generated ids (middle-bos removed); 'nbp-run decode' reads it as is" };
    public readonly Option<string?> Tokenizer = new("--tokenizer") { Description = "video tokenizer: with --input and --output, frame prediction from real frames to a video" };
    public readonly Option<string?> Input = new("--input", "-i") { Description = "conditioning frames: PNG folder or video file (the first 5 frames for K600's 17-frame clips)" };
    public readonly Option<string?> Output = new("--output", "-o") { Description = "prediction: .gif (written here), .mp4/.apng (via ffmpeg) or a folder; PNG frames are always written" };
    public readonly Option<int> Fps = SharedOptions.Fps();
    public readonly Option<string?> LogitsOut = new("--logits-out") { Description = "write the step-0 logits, float32 [rows, vocab], as .npy" };
    public readonly Option<string?> StatsJson = new("--stats-json") { Description = "write timings (load, prefill, steps) as JSON" };

    // words (UCF)
    public readonly Option<string?> Text = new("--prompt", "-p") { Description = "UCF (hybrid) model: the condition as text, through --text-tokenizer" };
    public readonly Option<string?> ClassName = TextCommands.ClassOption();
    public readonly Option<string?> TextTokenizer = TextCommands.TextTokenizerOption();
    public readonly Option<PaddingSide> Padding = TextCommands.PaddingOption();
    public readonly Option<float> CfgScale = new("--cfg-scale") { Description = "classifier-free guidance scale t: sample from (1+t)·cond − t·uncond (0 = off; needs the checkpoint's uncond_embedding)", DefaultValueFactory = _ => 0f };
    public readonly Option<string> CfgSchedule = new("--cfg-schedule") { Description = "constant (t every step) | linear (t·n at step n, the released code's scale_cfg)", DefaultValueFactory = _ => "constant" };

    // generation
    public readonly Option<int?> Steps = new("--steps", "-n") { Description = "forward steps (default: one whole clip)" };
    public readonly Option<int?> BlockSize = new("--block-size") { Description = "tokens per step B (default: token_number_per_step; 1 = NTP)" };
    public readonly Option<string?> Mode = new("--mode") { Description = "frame | hybrid (default: hybrid when the checkpoint says so)" };
    public readonly Option<int?> CondLength = new("--cond-length") { Description = "condition prefix length L" };

    // sampling
    public readonly Option<bool> Greedy = new("--greedy") { Description = "argmax decoding (the same as --temperature 0)" };
    public readonly Option<float?> Temperature = new("--temperature", "--temp") { Description = "logit divisor; 0 = greedy (default 1)" };
    public readonly Option<int?> TopK = new("--top-k") { Description = "keep logits >= the k-th largest (0 = off; default 16000)" };
    public readonly Option<float?> TopP = new("--top-p") { Description = "nucleus mass (1 = off; default 0.9)" };
    public readonly Option<ulong> Seed = new("--seed", "-s") { Description = "random seed; same seed, input and backend give the same tokens", DefaultValueFactory = _ => 0 };

    // backend
    public readonly Option<string> Backend = SharedOptions.Backend();
    public readonly Option<int?> Threads = SharedOptions.Threads();
    public readonly Option<string> DeviceWeights = new("--device-weights") { Description = "weight storage on an ILGPU device: auto (f16 on CUDA, f32 on ilgpu-cpu) | f32 | f16 | bf16", DefaultValueFactory = _ => "auto" };
    public readonly (Option<bool> On, Option<bool> Off) TensorCores = SharedOptions.TensorCores();
    public readonly Option<bool> CudaGraphs = new("--cuda-graphs") { Description = "cuda backend: each generation step as one CUDA graph launch (experimental: not yet measured on a GPU)" };
    // in-place by default here: one run of nbp-run generates one video, and packing K600's 3.1 GB of
    // matrices (~5 s on the 2-core VM) costs more than it saves (~2.4 s); long-lived hosts pack (the API default)
    public readonly Option<string> CpuWeights = new("--cpu-weights") { Description = "CPU backend: in-place (no extra memory) | packed (a packed copy of the matrices: ~25% faster steps after a one-time packing)", DefaultValueFactory = _ => "in-place" };
    public readonly Option<bool> SkipFinite = new("--skip-finite-check") { Description = "do not scan the weights for NaN/Inf when loading (trusted multi-GB files)" };

    // model overrides (MODEL.md §2: the CLI can override any metadata value)
    public readonly Option<int?> HeadCount = new("--n-head") { Description = "override n_head" };
    public readonly Option<int?> ModelBlock = new("--token-number-per-step") { Description = "override the checkpoint's token_number_per_step" };
    public readonly Option<int?> VideoVocab = new("--vocab-size") { Description = "override the video vocabulary size (metadata vocab_size)" };
    public readonly Option<bool?> Hybrid = new("--hybrid") { Description = "override the hybrid flag" };
    public readonly Option<int?> CondTokens = new("--cond-token-num") { Description = "override cond_token_num" };
    public readonly Option<int?> Resolution = new("--resolution") { Description = "override resolution" };
    public readonly Option<int?> SequenceLength = new("--sequence-length") { Description = "override sequence_length (frames per clip)" };

    // output control (recursive: every subcommand takes them)
    public readonly Option<bool> Quiet = new("--quiet", "-q") { Description = "no progress or detail lines (errors and what was written still appear)", Recursive = true };
    public readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "print the stack trace of an internal error", Recursive = true };

    public GenerateOptions()
    {
        Mode.AcceptOnlyFromAmong("frame", "hybrid");
        DeviceWeights.AcceptOnlyFromAmong("auto", "f32", "f16", "bf16");
        CpuWeights.AcceptOnlyFromAmong("packed", "in-place");
        CfgSchedule.AcceptOnlyFromAmong("constant", "linear");
    }

    public IReadOnlyList<(string Heading, Option[] Options)> Groups =>
    [
        ("Input and output", [Weights, PromptTokens, TokensOut, Tokenizer, Input, Output, Fps, LogitsOut, StatsJson]),
        ("Words (UCF hybrid model)", [Text, ClassName, TextTokenizer, Padding, CfgScale, CfgSchedule]),
        ("Generation", [Steps, BlockSize, Mode, CondLength]),
        ("Sampling", [Greedy, Temperature, TopK, TopP, Seed]),
        ("Backend", [Backend, Threads, DeviceWeights, TensorCores.On, TensorCores.Off, CudaGraphs, CpuWeights, SkipFinite]),
        ("Model overrides", [HeadCount, ModelBlock, VideoVocab, Hybrid, CondTokens, Resolution, SequenceLength]),
        ("Output control", [Quiet, Verbose]),
    ];
}
