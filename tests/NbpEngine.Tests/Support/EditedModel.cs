using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Tests.Support;

/// <summary>The frame fixture model written again with some tensors or metadata changed (broken weights, wrong shapes).</summary>
public static class EditedModel
{
    /// <param name="edit">changes the tensors, by name: (shape, values)</param>
    public static string Write(string path, Action<Dictionary<string, (long[] Shape, float[] Data)>>? edit = null, Dictionary<string, string>? metadata = null)
    {
        using var source = SafetensorsFile.Open(Fixtures.PathOf("frame_model.safetensors"));
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
