// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// The simulated machine's RAM as devices without an IOMMU see it: page frames, each backed by a page of this process's
/// memory that was locked through the kernel port (<see cref="SimulatedKernel.LockMemory"/>). <c>/proc/self/pagemap</c>
/// reports these frames, and a no-IOMMU device's DMA reaches exactly these frames: a physical address with no frame
/// behind it is refused and recorded as a <see cref="DmaFault"/> (on real hardware it would land in some other memory).
/// </summary>
/// <remarks>
/// Frames are handed out upwards from 16 MiB, a freed frame first; so a fresh lock of several pages gets consecutive
/// frames, as the testbed's kernel gave a freshly locked two-page buffer (0x68c7000, 0x68c8000), and frame numbers differ
/// from process addresses (code that hands a device a process address fails here). With
/// <see cref="SimulatedTopology.ScatteredPhysicalPages"/> every other frame is skipped, so no two pages are contiguous —
/// what a fragmented machine may give, for code that must not assume contiguity. The model has 256 MiB of RAM (every
/// physical address fits edu's default 28-bit DMA mask). All state is changed under the kernel lock.
/// </remarks>
internal sealed class SimulatedPhysicalMemory(bool scattered) : IDmaSpace
{
    /// <summary>The page size of the model (x86-64's 4 KiB).</summary>
    internal const ulong PageSize = 4096;

    private const ulong FirstFrame = 0x1000;   // 16 MiB: low memory is never handed out
    private const ulong EndFrame = 0x10000;    // 256 MiB

    private readonly Dictionary<ulong, nint> _frames = [];   // frame number → process address of the page
    private readonly Stack<ulong> _freed = new();
    private ulong _nextFresh = FirstFrame;

    /// <summary>The number of frames in use.</summary>
    internal int FrameCount => _frames.Count;

    /// <summary>Gives each page of <paramref name="address"/>..+<paramref name="pages"/> a frame; false (nothing given)
    /// when the model's RAM is exhausted.</summary>
    internal bool TryAssign(nint address, int pages, ulong[] frames)
    {
        ulong step = scattered ? 2UL : 1UL;
        if ((ulong)pages > (ulong)_freed.Count + ((EndFrame - Math.Min(EndFrame, _nextFresh)) / step))
        {
            return false;
        }
        for (int i = 0; i < pages; i++)
        {
            ulong frame;
            if (_freed.Count > 0)
            {
                frame = _freed.Pop();
            }
            else
            {
                frame = _nextFresh;
                _nextFresh += step;
            }
            frames[i] = frame;
            _frames.Add(frame, address + (nint)((ulong)i * PageSize));
        }
        return true;
    }

    /// <summary>Returns frames to the free pool (the pages were unmapped).</summary>
    internal void Release(ReadOnlySpan<ulong> frames)
    {
        for (int i = frames.Length - 1; i >= 0; i--)
        {
            if (_frames.Remove(frames[i]))
            {
                _freed.Push(frames[i]);
            }
        }
    }

    /// <summary>A device access to physical memory: succeeds only when the range lies in one frame that is in use
    /// (<see cref="SimulatedKernel.DeviceDma"/> splits accesses at page boundaries).</summary>
    public bool TryTranslate(ulong iova, ulong length, bool write, out nint address)
    {
        address = 0;
        ulong offset = iova % PageSize;
        if (length == 0 || length > PageSize - offset || !_frames.TryGetValue(iova / PageSize, out nint page))
        {
            return false;
        }
        address = page + (nint)offset;
        return true;
    }
}
