// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Shouldly;
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Devices.Platform;
using Vfio.Simulator;

namespace Vfio.DependencyInjection.Tests;

[CollectionDefinition(nameof(TelemetryTests), DisableParallelization = true)]
public sealed class TelemetryCollection;

/// <summary>
/// The library's telemetry as a host collects it: log event ids (explicit, unique across every product assembly),
/// instruments named on OpenTelemetry's conventions with units, tags and bucket advice, the interrupt counter, and the
/// spans for attach, map, reset and detach. The interrupt counter and the spans are process-wide, so this class runs
/// alone.
/// </summary>
[Collection(nameof(TelemetryTests))]
public sealed partial class TelemetryTests
{
    private const string Space = "telemetry";

    /// <summary>Every product assembly that can log (the backends, Core, and those without a log message yet).</summary>
    private static readonly Assembly[] s_productAssemblies =
    [
        typeof(VfioManager).Assembly, typeof(LegacyBackend).Assembly, typeof(IommuFdBackend).Assembly,
        typeof(SimulatedKernel).Assembly, typeof(VfioPlatformDevice).Assembly,
    ];

    [Fact]
    public void EveryLogMessage_OfEveryProductAssembly_HasAnExplicitUniqueEventId()
    {
        var seen = new Dictionary<int, string>();
        int messages = 0;
        foreach (Assembly assembly in s_productAssemblies)
        {
            foreach (MethodInfo method in assembly.GetTypes().SelectMany(static t => t.GetMethods(BindingFlags.Static | BindingFlags.Instance
                | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)))
            {
                if (method.GetCustomAttribute<LoggerMessageAttribute>() is not { } message)
                {
                    continue;
                }
                messages++;
                string name = $"{assembly.GetName().Name}: {method.DeclaringType!.Name}.{method.Name}";
                message.EventId.ShouldBeGreaterThan(0, $"{name} has no explicit event id (EventId = N in its [LoggerMessage])");
                seen.TryAdd(message.EventId, name).ShouldBeTrue(
                    $"{name} and {seen.GetValueOrDefault(message.EventId)} share event id {message.EventId}");
            }
        }
        messages.ShouldBeGreaterThan(15);
    }

    [Fact]
    public void Instruments_AreNamedOnOpenTelemetryConventions_WithUnits_AndDurationBucketAdvice()
    {
        using var metrics = new VfioMetrics();
        _ = VfioTelemetry.ActivitySource;   // creates the process-wide meter
        var instruments = new List<Instrument>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name == VfioTelemetry.Name)
                {
                    lock (instruments)
                    {
                        instruments.Add(instrument);
                    }
                }
            },
        };
        listener.Start();
        // DI's and the process-wide meter: every instrument of the library.
        instruments.Select(static i => i.Name).Distinct().Order(StringComparer.Ordinal).ShouldBe([
            "vfio.device.attach.duration", "vfio.dma.map.duration", "vfio.dma.mapping.available", "vfio.dma.mapping.count",
            "vfio.dma.memory.usage", "vfio.dma.unmap.duration", "vfio.interrupt.count",
        ]);
        foreach (Instrument instrument in instruments)
        {
            // Lower-case dotted namespaces, snake_case words, no unit or plural in the name (OpenTelemetry's naming rules).
            OtelName().IsMatch(instrument.Name).ShouldBeTrue(instrument.Name);
            instrument.Name.ShouldNotContain("bytes");
            instrument.Unit.ShouldNotBeNullOrEmpty(instrument.Name);
            instrument.Description.ShouldNotBeNullOrEmpty(instrument.Name);
            if (instrument.Name.EndsWith(".duration", StringComparison.Ordinal))
            {
                instrument.Unit.ShouldBe("s");
                IReadOnlyList<double> buckets = ((Histogram<double>)instrument).Advice!.HistogramBucketBoundaries!;
                (buckets[0], buckets[^1]).ShouldBe((0.000_001, 1.0), instrument.Name);
                buckets.SequenceEqual(buckets.Order()).ShouldBeTrue(instrument.Name);
            }
        }
        instruments.Single(static i => i.Name == "vfio.dma.memory.usage").Unit.ShouldBe("By");
        instruments.Single(static i => i.Name == "vfio.interrupt.count").Unit.ShouldBe("{interrupt}");
    }

    [Fact]
    public void AttachMapInterruptResetDetach_AreLoggedMeasuredAndTraced_WithBackendAndDeviceTags()
    {
        var activities = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = static s => s.Name == VfioTelemetry.Name,
            Sample = static (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                lock (activities)
                {
                    activities.Add(a);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        var services = new ServiceCollection();
        services.AddFakeLogging();
        services.AddMetrics();
        services.AddVfio(o => o.Backend = "iommufd").AddIommuFdBackend().AddLegacyBackend().UseSimulator();
        using ServiceProvider provider = services.BuildServiceProvider();
        var meters = provider.GetRequiredService<IMeterFactory>();
        using var mappings = new MetricCollector<long>(meters, VfioTelemetry.Name, "vfio.dma.mapping.count");
        using var memory = new MetricCollector<long>(meters, VfioTelemetry.Name, "vfio.dma.memory.usage");
        using var mapDuration = new MetricCollector<double>(meters, VfioTelemetry.Name, "vfio.dma.map.duration");
        using var interrupts = new MetricCollector<long>((object?)null, VfioTelemetry.Name, "vfio.interrupt.count");
        using var attachDuration = new MetricCollector<double>((object?)null, VfioTelemetry.Name, "vfio.device.attach.duration");

        VfioManager vfio = provider.GetRequiredService<VfioManager>();
        string device = SimulatedMachines.Edu;
        using (DmaSpace space = vfio.CreateDmaSpace(Space))
        {
            AttachedDevice edu = vfio.AttachDevice(SimulatedMachines.Edu, space);
            using (DmaBuffer buffer = DmaBuffer.Allocate(space, 2 * 4096, DmaAccess.ReadWrite, dmaMask: 0x0fff_ffff))
            {
                using VfioRegionMapping bar0 = edu.Device.MapRegion(VfioPciRegion.Bar0);
                ushort command = edu.Device.ReadRegion16(VfioPciRegion.Config, 0x04);
                edu.Device.WriteRegion16(VfioPciRegion.Config, 0x04, (ushort)(command | 0x4));
                using var msi = new InterruptEvent();
                edu.Device.SetIrqEventFds(VfioPciIrq.Msi, 0, [msi]);
                bar0.Write32(0x60, 1);
                msi.TryWait(TimeSpan.FromSeconds(10), out ulong count).ShouldBeTrue();
                count.ShouldBe(1UL);
                bar0.Write32(0x64, 1);
                edu.Device.DisableIrq(VfioPciIrq.Msi);
            }
            try
            {
                edu.Device.Reset();
            }
            catch (VfioException)
            {
                // A device without a function reset: the span records the failure (checked below either way).
            }
            edu.Dispose();
        }

        KeyValuePair<string, object?>[] spaceTags = [new(VfioTelemetry.DmaSpaceAttribute, Space), new(VfioTelemetry.BackendAttribute, "iommufd")];
        mappings.GetMeasurementSnapshot().Select(static m => m.Value).ShouldBe([1L, -1L]);
        mappings.GetMeasurementSnapshot().ShouldAllBe(m => m.MatchesTags(spaceTags));
        memory.GetMeasurementSnapshot().Select(static m => m.Value).ShouldBe([8192L, -8192L]);
        mapDuration.GetMeasurementSnapshot().ShouldHaveSingleItem().MatchesTags(spaceTags).ShouldBeTrue();

        CollectedMeasurement<long> interrupt = interrupts.GetMeasurementSnapshot().ShouldHaveSingleItem();
        interrupt.Value.ShouldBe(1);
        interrupt.Tags[VfioTelemetry.DeviceAttribute].ShouldBe(device);
        interrupt.Tags[VfioTelemetry.IrqIndexAttribute].ShouldBe(VfioPciIrq.Msi);
        CollectedMeasurement<double> attach = attachDuration.GetMeasurementSnapshot().ShouldHaveSingleItem();
        (attach.Tags[VfioTelemetry.BackendAttribute], attach.Tags[VfioTelemetry.DeviceAttribute]).ShouldBe(("iommufd", (object?)device));

        string[] spans;
        lock (activities)
        {
            spans = [.. activities.Select(static a => a.OperationName)];
        }
        spans.ShouldBe(["vfio.device.attach", "vfio.dma.map", "vfio.device.reset", "vfio.device.detach"]);
        lock (activities)
        {
            activities.ShouldAllBe(a => (string?)a.GetTagItem(VfioTelemetry.DeviceAttribute) == device || a.OperationName == "vfio.dma.map");
            Activity map = activities.Single(static a => a.OperationName == "vfio.dma.map");
            (map.GetTagItem(VfioTelemetry.DmaSpaceAttribute), map.GetTagItem(VfioTelemetry.BackendAttribute)).ShouldBe((Space, (object?)"iommufd"));
            activities.Single(static a => a.OperationName == "vfio.device.attach").GetTagItem(VfioTelemetry.BackendAttribute).ShouldBe("iommufd");
        }

        FakeLogRecord attached = provider.GetFakeLogCollector().GetSnapshot().Single(static r => r.Message.Contains("attached", StringComparison.Ordinal));
        attached.Id.Id.ShouldBe(101);
    }

    [GeneratedRegex(@"^vfio(\.[a-z][a-z0-9_]*)+$")]
    private static partial Regex OtelName();
}
