// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Vfio.Core;

/// <summary>
/// The library's DMA metrics (<see cref="System.Diagnostics.Metrics"/>, meter <c>Vfio</c>, named on OpenTelemetry's
/// conventions): mapped memory and mappings, map and unmap latency, and how many more mappings the kernel accepts.
/// Recording allocates nothing. <see cref="VfioTelemetry"/> has the traces and the process-wide instruments.
/// </summary>
/// <remarks>
/// Instruments: <c>vfio.dma.memory.usage</c> (By) and <c>vfio.dma.mapping.count</c> (<c>{mapping}</c>), up-down
/// counters; <c>vfio.dma.map.duration</c> and <c>vfio.dma.unmap.duration</c> (s), histograms with bucket advice from
/// 1 µs to 1 s; all four tagged <c>vfio.dma.space</c> and <c>vfio.backend</c> (the backends of the space's containers).
/// <c>vfio.dma.mapping.available</c> (<c>{mapping}</c>) is an observable gauge: the smallest
/// <see cref="DmaContainer.DmaMappingsAvailable"/> over the containers of the spaces that report to this object, minus
/// what they mapped since.
/// </remarks>
public sealed class VfioMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = VfioTelemetry.Name;

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly UpDownCounter<long> _mappedBytes;
    private readonly UpDownCounter<long> _mappings;
    private readonly Histogram<double> _mapDuration;
    private readonly Histogram<double> _unmapDuration;
    private readonly List<WeakReference<DmaSpace>> _spaces = [];

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/> (DI), or on a meter of its own.</summary>
    /// <param name="meterFactory">The host's meter factory; null for a meter this object owns and disposes.</param>
    public VfioMetrics(IMeterFactory? meterFactory = null)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        var advice = new InstrumentAdvice<double> { HistogramBucketBoundaries = VfioTelemetry.DurationBuckets };
        _mappedBytes = _meter.CreateUpDownCounter<long>("vfio.dma.memory.usage", "By", "Bytes mapped for device DMA.");
        _mappings = _meter.CreateUpDownCounter<long>("vfio.dma.mapping.count", "{mapping}", "Live DMA mappings.");
        _mapDuration = _meter.CreateHistogram("vfio.dma.map.duration", "s", "Time to map one DMA mapping into every container of its space.",
            tags: null, advice);
        _unmapDuration = _meter.CreateHistogram("vfio.dma.unmap.duration", "s", "Time to unmap one DMA mapping from every container of its space.",
            tags: null, advice);
        _meter.CreateObservableGauge("vfio.dma.mapping.available", ObserveAvailable, "{mapping}",
            "How many more mappings the kernel accepts (Type1 dma_entry_limit), lowest over the containers.");
    }

    /// <summary>The meter the instruments live on.</summary>
    public Meter Meter => _meter;

    /// <summary>Records a mapping made (the space calls it).</summary>
    /// <param name="bytes">Its size.</param>
    /// <param name="startTimestamp">A <see cref="Stopwatch.GetTimestamp"/> taken before it was mapped.</param>
    /// <param name="tags">The space's tags.</param>
    internal void RecordMap(ulong bytes, long startTimestamp, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        _mapDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, tags);
        _mappedBytes.Add((long)bytes, tags);
        _mappings.Add(1, tags);
    }

    /// <summary>Records a mapping removed (the space calls it).</summary>
    /// <param name="bytes">Its size.</param>
    /// <param name="startTimestamp">A <see cref="Stopwatch.GetTimestamp"/> taken before it was unmapped.</param>
    /// <param name="tags">The space's tags.</param>
    internal void RecordUnmap(ulong bytes, long startTimestamp, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        _unmapDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, tags);
        _mappedBytes.Add(-(long)bytes, tags);
        _mappings.Add(-1, tags);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    internal void Register(DmaSpace space)
    {
        lock (_spaces)
        {
            _spaces.Add(new WeakReference<DmaSpace>(space));
        }
    }

    private IEnumerable<Measurement<long>> ObserveAvailable()
    {
        long? lowest = null;
        lock (_spaces)
        {
            _spaces.RemoveAll(w => !w.TryGetTarget(out DmaSpace? s) || s.IsDisposed);
            foreach (WeakReference<DmaSpace> weak in _spaces)
            {
                if (weak.TryGetTarget(out DmaSpace? space) && space.MappingsAvailable is int available)
                {
                    lowest = Math.Min(lowest ?? long.MaxValue, available);
                }
            }
        }
        return lowest is long value ? [new Measurement<long>(value)] : [];
    }
}
