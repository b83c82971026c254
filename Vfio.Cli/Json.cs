// SPDX-License-Identifier: MIT
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Vfio.Cli;

// What --json prints: one object per command, source-generated (no reflection; AOT-safe). Numbers are numbers
// (sizes, offsets, IOVAs as unsigned integers); flags are lists of names.

internal sealed record ErrorReport(string Kind, int ExitCode, string Message, string? Fix);

internal sealed record GroupMemberReport(string Name, string? Driver);

internal sealed record DeviceReport(string Name, string Bus, string? VendorDevice, string? PciClass, bool PciBridge, string? Driver, int? IommuGroup, bool Viable,
    bool NoIommu, IReadOnlyList<GroupMemberReport> Blockers, string? GroupNode, string? Cdev, IReadOnlyList<string> Backends,
    IReadOnlyList<string> NotUsableBecause);

internal sealed record ListReport(string Kernel, IReadOnlyList<DeviceReport> Devices);

internal sealed record RangeReport(ulong Start, ulong Last);

internal sealed record HardwareInfoReport(string Type, ulong Capabilities, int MaxPasidLog2, bool DirtyTracking);

internal sealed record ContainerReport(string Name, string Backend, string? IommuType, ulong PageSizeMask, IReadOnlyList<ulong> PageSizes,
    IReadOnlyList<RangeReport> IovaRanges, int? DmaMappingsAvailable, uint? IoasId, IReadOnlyList<uint>? HwptIds,
    HardwareInfoReport? HardwareInfo, IReadOnlyList<string> Features, SpaprReport? Spapr = null);

/// <summary>An sPAPR TCE container: its version, the host's window limits, the windows open now, pre-registered memory
/// and the EEH state (or why there is none).</summary>
internal sealed record SpaprReport(string Version, ulong Dma32WindowStart, ulong Dma32WindowSize, ulong HostPageSizeMask, int MaxWindows,
    int MaxLevels, IReadOnlyList<SpaprWindowReport> Windows, int PreRegisteredRegions, ulong PreRegisteredBytes, string EehState);

internal sealed record SpaprWindowReport(ulong Start, ulong Size, ulong PageSize, int Levels, int Mappings, bool Fixed);

internal sealed record SparseAreaReport(ulong Offset, ulong Size);

internal sealed record RegionReport(int Index, string Name, bool Present, ulong Size, ulong Offset, IReadOnlyList<string> Flags,
    IReadOnlyList<SparseAreaReport>? SparseMmapAreas, string? Type, bool MsixMappable, IReadOnlyList<string> Capabilities);

internal sealed record IrqReport(int Index, string Name, bool Present, int Count, IReadOnlyList<string> Flags);

internal sealed record InfoReport(string Kernel, string Device, int? IommuGroup, IReadOnlyList<string> Flags, int RegionCount, int IrqCount,
    ContainerReport Container, IReadOnlyList<RegionReport> Regions, IReadOnlyList<IrqReport> Irqs, Commands.PciInfoReport? Pci = null);

internal sealed record CheckReport(string Name, string Status, string Detail, string? Fix);

internal sealed record DoctorReport(string Kernel, IReadOnlyList<CheckReport> Checks, int Failed, int Warnings);

internal sealed record StepReport(string Name, bool Ok, double Milliseconds, string Detail);

internal sealed record DemoReport(string Kernel, string? SimulatorReason, string Device, string? Backend,
    IReadOnlyList<StepReport> Steps);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(JsonEnvelope<NoResult>), TypeInfoPropertyName = "JsonEnvelopeNoResult")]
[JsonSerializable(typeof(JsonEnvelope<ListReport>), TypeInfoPropertyName = "JsonEnvelopeList")]
[JsonSerializable(typeof(JsonEnvelope<InfoReport>), TypeInfoPropertyName = "JsonEnvelopeInfo")]
[JsonSerializable(typeof(JsonEnvelope<DoctorReport>), TypeInfoPropertyName = "JsonEnvelopeDoctor")]
[JsonSerializable(typeof(JsonEnvelope<DemoReport>), TypeInfoPropertyName = "JsonEnvelopeDemo")]
internal sealed partial class CliJsonContext : JsonSerializerContext;

internal static class JsonOutput
{
    /// <summary>The generated context with text left readable ("->", "'" unescaped): the output is for scripts and
    /// terminals, never embedded in HTML.</summary>
    internal static readonly CliJsonContext Context = new(new JsonSerializerOptions(CliJsonContext.Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    internal static void Write<T>(TextWriter writer, T value, Func<CliJsonContext, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>> type)
        => writer.WriteLine(JsonSerializer.Serialize(value, type(Context)));
}
