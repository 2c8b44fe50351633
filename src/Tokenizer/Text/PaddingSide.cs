namespace NbpEngine.Tokenizer.Text;

/// <summary>Where EOS padding goes when a prompt is shorter than the condition length (the slow HF LLaMA tokenizer pads on the right).</summary>
public enum PaddingSide
{
    Right,
    Left,
}
