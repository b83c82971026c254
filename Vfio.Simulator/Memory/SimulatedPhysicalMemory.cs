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
/// Frames are handed out from the top of the first 256 MiB downwards, one page at a time, and a freed frame is reused
/// first — as Linux's page allocator tends to give consecutive faults descending frames. So consecutive process pages
/// are not physically contiguous (code that assumes they are fails here, as it may on a real machine), frame numbers
/// differ from process addresses (code that hands a device a process address fails), and every physical address fits
/// edu's default 28-bit DMA mask. All state is changed under the kernel lock.
/// </remarks>
internal sealed class SimulatedPhysicalMemory : IDmaSpace
{
    /// <summary>The page size of the model (x86-64's 4 KiB).</summary>
    internal const ulong PageSize = 4096;

    private const ulong FirstFreshFrame = 0xffff;   // just below 256 MiB
    private const ulong LowestFrame = 0x100;        // the first MiB is never handed out

    private readonly Dictionary<ulong, nint> _frames = [];   // frame number → process address of the page
    private readonly Stack<ulong> _freed = new();
    private ulong _nextFresh = FirstFreshFrame;

    /// <summary>The number of frames in use.</summary>
    internal int FrameCount => _frames.Count;

    /// <summary>Gives each page of <paramref name="address"/>..+<paramref name="pages"/> a frame; false (nothing given)
    /// when the model's RAM is exhausted.</summary>
    internal bool TryAssign(nint address, int pages, ulong[] frames)
    {
        if (pages > _freed.Count + (int)Math.Min(int.MaxValue, _nextFresh - LowestFrame + 1))
        {
            return false;
        }
        for (int i = 0; i < pages; i++)
        {
            ulong frame = _freed.Count > 0 ? _freed.Pop() : _nextFresh--;
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
