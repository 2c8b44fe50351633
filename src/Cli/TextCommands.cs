using System.CommandLine;
using NbpEngine.Cli.IO;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Tokenizer.Text;
using NbpEngine.Core;

namespace NbpEngine.Cli;

/// <summary>
/// Words to condition ids: <c>nbp-run text-ids</c> (LLaMA ids as the UCF model was conditioned, before the
/// model-vocabulary shift, like llama.cpp's llama-tokenize), and the hybrid prompt that <c>--prompt</c> /
/// <c>--class</c> give generation.
/// </summary>
public static class TextCommands
{
    public static Option<string?> TextTokenizerOption() => new("--text-tokenizer") { Description = "LLaMA SentencePiece tokenizer.model for --prompt / --class (UCF)" };

    public static Option<string?> ClassOption() => new("--class") { Description = "a UCF-101 class name (e.g. ApplyEyeMakeup); 'list' prints all 101" };

    public static Option<PaddingSide> PaddingOption()
    {
        var padding = new Option<PaddingSide>("--padding-side") { Description = "where EOS padding goes: right (the training tokenizer's default) | left", DefaultValueFactory = _ => PaddingSide.Right };
        padding.AcceptOnlyFromAmong("right", "left");
        return padding;
    }

    /// <summary>Longest condition text-ids prints (UCF uses 8).</summary>
    public const int MaxConditionLength = 4096;

    public static Command TextIds()
    {
        var tokenizer = TextTokenizerOption();
        tokenizer.Required = true;
        var length = new Option<int>("--cond-length") { Description = "condition length L (cond_token_num: 8 for UCF)", Required = true };
        var padding = PaddingOption();
        var className = ClassOption();
        var texts = new Argument<string[]>("TEXT") { Description = "texts to tokenize, one line of L ids each", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("text-ids", "text -> the L LLaMA condition ids (BOS + pieces, truncated, EOS-padded), before the model-vocabulary shift")
        {
            tokenizer, length, padding, className, texts,
        };
        command.SetAction(parse => GenerateCommand.Guard(() =>
        {
            if (parse.GetValue(className) is "list") return ListClasses();
            var inputs = parse.GetValue(texts) ?? [];
            if (parse.GetValue(className) is { } name) inputs = [.. inputs, UcfClasses.Prompt(UcfClasses.Find(name))];
            if (inputs.Length == 0) throw new CliInputException("give one or more texts, or --class NAME");
            if (parse.GetValue(length) is < 1 or > MaxConditionLength)
                throw new CliInputException($"--cond-length must be in [1, {MaxConditionLength}], found {parse.GetValue(length)}");
            var model = TextPromptTokenizer.Load(parse.GetValue(tokenizer)!);
            foreach (var text in inputs)
                Console.WriteLine(string.Join(' ', model.ConditionIds(text, parse.GetValue(length), parse.GetValue(padding))));
            return 0;
        }));
        return command;
    }

    /// <summary>The 101 class names with their prompts, one per line, on stdout.</summary>
    public static int ListClasses()
    {
        foreach (var name in UcfClasses.Names) Console.WriteLine($"{name}\t{UcfClasses.Prompt(name)}");
        return 0;
    }

    /// <summary>
    /// The hybrid prompt for a text or a class (exactly one): shifted condition ids of the model's cond_token_num + bov (0),
    /// with the words they came from. Generation and batch jobs both build it here.
    /// </summary>
    public static (string Words, int[] Prompt) HybridPrompt(string? text, string? className, TextPromptTokenizer? tokenizer, PaddingSide padding, ModelConfig cfg)
    {
        if ((text is null) == (className is null)) throw new CliInputException("give the condition as a text or a class, exactly one of them");
        if (tokenizer is null) throw new CliInputException("a text or class condition needs --text-tokenizer (LLaMA's tokenizer.model)");
        string words = text ?? UcfClasses.Prompt(UcfClasses.Find(className!));
        return (words, tokenizer.HybridPrompt(words, cfg, padding));
    }
}
