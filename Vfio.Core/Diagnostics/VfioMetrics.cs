// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Vfio.Core;

/// <summary>
/// The library's metrics (<see cref="System.Diagnostics.Metrics"/>, meter <c>Vfio</c>): mapped bytes and mappings,
/// map and unmap latency, and how many more mappings the kernel accepts. Recording allocates nothing.
/// </summary>
/// <remarks>
/// Instruments: <c>vfio.dma.mapped_bytes</c> and <c>vfio.dma.mappings</c> (up-down counters),
/// <c>vfio.dma.map.duration</c> and <c>vfio.dma.unmap.duration</c> (histograms, seconds), and
/// <c>vfio.dma.mappings_available</c> (an observable gauge: the smallest <see cref="DmaContainer.DmaMappingsAvailable"/>
/// over the containers of the spaces that report to this object, minus what they mapped since).
/// </remarks>
public sealed class VfioMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Vfio";

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
        _mappedBytes = _meter.CreateUpDownCounter<long>("vfio.dma.mapped_bytes", "By", "Bytes mapped for device DMA.");
        _mappings = _meter.CreateUpDownCounter<long>("vfio.dma.mappings", "{mapping}", "Live DMA mappings.");
        _mapDuration = _meter.CreateHistogram<double>("vfio.dma.map.duration", "s", "Time to map one DMA mapping into every container of its space.");
        _unmapDuration = _meter.CreateHistogram<double>("vfio.dma.unmap.duration", "s", "Time to unmap one DMA mapping from every container of its space.");
        _meter.CreateObservableGauge("vfio.dma.mappings_available", ObserveAvailable, "{mapping}",
            "How many more mappings the kernel accepts (Type1 dma_entry_limit), lowest over the containers.");
    }

    /// <summary>The meter the instruments live on.</summary>
    public Meter Meter => _meter;

    /// <summary>Records a mapping made (the space calls it).</summary>
    /// <param name="bytes">Its size.</param>
    /// <param name="startTimestamp">A <see cref="Stopwatch.GetTimestamp"/> taken before it was mapped.</param>
    internal void RecordMap(ulong bytes, long startTimestamp)
    {
        _mapDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds);
        _mappedBytes.Add((long)bytes);
        _mappings.Add(1);
    }

    /// <summary>Records a mapping removed (the space calls it).</summary>
    /// <param name="bytes">Its size.</param>
    /// <param name="startTimestamp">A <see cref="Stopwatch.GetTimestamp"/> taken before it was unmapped.</param>
    internal void RecordUnmap(ulong bytes, long startTimestamp)
    {
        _unmapDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds);
        _mappedBytes.Add(-(long)bytes);
        _mappings.Add(-1);
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
