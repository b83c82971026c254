// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace Vfio.Core;

/// <summary>
/// The library's traces and its process-wide instruments, named on OpenTelemetry's conventions: the
/// <see cref="System.Diagnostics.ActivitySource"/> <c>Vfio</c> (spans <c>vfio.device.attach</c>,
/// <c>vfio.device.detach</c>, <c>vfio.device.reset</c>, <c>vfio.dma.map</c>) and the meter <c>Vfio</c> for what exists
/// without a host (interrupt events, backends created in code): <c>vfio.interrupt.count</c> and
/// <c>vfio.device.attach.duration</c>. The DMA instruments are <see cref="VfioMetrics"/>'s, on the host's meter of the
/// same name, so <c>AddMeter("Vfio")</c> and <c>AddSource("Vfio")</c> collect everything.
/// </summary>
/// <remarks>
/// Attributes: <c>vfio.backend</c> (legacy, iommufd), <c>vfio.device</c> (the device's name, e.g. 0000:00:02.0),
/// <c>vfio.irq.index</c>, <c>vfio.dma.space</c>. Durations are in seconds with bucket advice from 1 µs to 1 s.
/// Recording allocates nothing; a span is started only when a listener samples the source.
/// </remarks>
public static class VfioTelemetry
{
    /// <summary>The name of the activity source and of the meters.</summary>
    public const string Name = "Vfio";

    /// <summary>The attribute naming the backend.</summary>
    public const string BackendAttribute = "vfio.backend";

    /// <summary>The attribute naming the device.</summary>
    public const string DeviceAttribute = "vfio.device";

    /// <summary>The attribute naming an IRQ index.</summary>
    public const string IrqIndexAttribute = "vfio.irq.index";

    /// <summary>The attribute naming a DMA space.</summary>
    public const string DmaSpaceAttribute = "vfio.dma.space";

    /// <summary>Histogram buckets for durations of a microsecond to a second (seconds): a map or an attach takes from a
    /// few microseconds (simulator, small mappings) to tens of milliseconds (pinning large mappings, opening a group).</summary>
    internal static readonly double[] DurationBuckets =
        [0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    private static readonly Meter s_meter = new(Name, typeof(VfioTelemetry).Assembly.GetName().Version?.ToString());
    private static readonly Counter<long> s_interrupts = s_meter.CreateCounter<long>("vfio.interrupt.count", "{interrupt}",
        "Interrupts received through InterruptEvent waits (the eventfd counts added up).");
    private static readonly Histogram<double> s_attachDuration = s_meter.CreateHistogram("vfio.device.attach.duration", "s",
        "Time to attach a device through a backend (open, join or create a container, preflight included).", tags: null,
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });

    /// <summary>The activity source: start spans with it only when <see cref="ActivitySource.HasListeners"/>.</summary>
    public static ActivitySource ActivitySource { get; } = new(Name, typeof(VfioTelemetry).Assembly.GetName().Version?.ToString());

    /// <summary>Counts interrupts received; one check of a field when nobody listens.</summary>
    /// <param name="count">The eventfd count read.</param>
    /// <param name="tags">The event's tags (device, IRQ index), or empty.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void RecordInterrupts(ulong count, KeyValuePair<string, object?>[]? tags)
    {
        if (s_interrupts.Enabled)
        {
            s_interrupts.Add((long)count, new ReadOnlySpan<KeyValuePair<string, object?>>(tags));
        }
    }

    internal static void RecordAttach(string backend, string device, long startTimestamp)
    {
        if (s_attachDuration.Enabled)
        {
            s_attachDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds,
                new KeyValuePair<string, object?>(BackendAttribute, backend), new KeyValuePair<string, object?>(DeviceAttribute, device));
        }
    }

    /// <summary>Starts a span when a listener is present (else null, at the cost of one check).</summary>
    internal static Activity? Start(string name, string? backend, string device)
    {
        if (!ActivitySource.HasListeners())
        {
            return null;
        }
        Activity? activity = ActivitySource.StartActivity(name, ActivityKind.Internal);
        if (activity is not null)
        {
            if (backend is not null)
            {
                activity.SetTag(BackendAttribute, backend);
            }
            activity.SetTag(DeviceAttribute, device);
        }
        return activity;
    }

    /// <summary>Marks a span failed with the exception's type and message.</summary>
    internal static void Fail(Activity? activity, Exception exception)
    {
        if (activity is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, exception.Message);
            activity.SetTag("error.type", exception.GetType().FullName);
        }
    }
}
