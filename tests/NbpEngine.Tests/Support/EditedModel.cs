using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Tests.Support;

/// <summary>A fixture file (the frame model unless named) written again with some tensors or metadata changed (broken weights, wrong shapes, other FSQ levels).</summary>
public static class EditedModel
{
    /// <param name="edit">changes the tensors, by name: (shape, values)</param>
    public static string Write(string path, Action<Dictionary<string, (long[] Shape, float[] Data)>>? edit = null, Dictionary<string, string>? metadata = null,
                               string fixture = "frame_model.safetensors")
    {
        using var source = SafetensorsFile.Open(Fixtures.PathOf(fixture));
        var tensors = new Dictionary<string, (long[] Shape, float[] Data)>();
        foreach (var t in source.Tensors)
        {
            var data = new float[t.ElementCount];
            source.ReadAsFloat32(t, data);
            tensors[t.Name] = (t.Shape, data);
        }
        edit?.Invoke(tensors);
        SafetensorsWriter.Write(path, tensors.Select(kv => (kv.Key, kv.Value.Shape, kv.Value.Data)), metadata ?? source.Metadata.ToDictionary());
        return path;
    }
}
