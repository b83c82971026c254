// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

/// <summary>A region of an emulated device that can be mapped: accesses through the mapping reach the model.</summary>
internal interface IMappedRegion
{
    /// <summary>The kernel whose lock serialises the access with ioctls and device work.</summary>
    SimulatedKernel Kernel { get; }

    /// <summary>Reads <paramref name="width"/> bytes at <paramref name="offset"/> from the start of the region.
    /// Throws when the access would fault (the kernel's <c>SIGBUS</c>).</summary>
    ulong ReadMapped(ulong offset, int width);

    /// <summary>Writes <paramref name="width"/> bytes at <paramref name="offset"/> from the start of the region.</summary>
    void WriteMapped(ulong offset, int width, ulong value);
}

/// <summary>
/// An <c>mmap</c> of an emulated device region: every volatile access is routed to the device model under the kernel
/// lock, as a CPU access to a BAR reaches the device. The buffer itself is a private anonymous mapping of the same
/// length, so code that bypasses the accessors touches harmless memory instead of a wild address.
/// </summary>
internal sealed class EmulatedRegionMapping : MemoryMapping
{
    private readonly IMappedRegion _region;
    private readonly ulong _regionOffset;
    private readonly ulong _mappedLength;
    private SafeFileHandle? _file;

    private EmulatedRegionMapping(IMappedRegion region, ulong regionOffset, nint address, ulong length, long fileOffset)
        : base(routesAccesses: true)
    {
        _region = region;
        _regionOffset = regionOffset;
        _mappedLength = length;
        SetMapping(address, length, fileOffset);
    }

    /// <summary>Creates the mapping of <paramref name="length"/> bytes at <paramref name="regionOffset"/> of the region,
    /// its backing memory at an address that is a multiple of <paramref name="alignment"/> (0: anywhere), as
    /// <c>LinuxKernel.MapAligned</c> places a real one. Returns 0 or <c>-errno</c> (the backing memory could not be
    /// mapped).</summary>
    internal static int Create(IMappedRegion region, ulong regionOffset, ulong length, long fileOffset, ulong alignment, out MemoryMapping? mapping)
    {
        mapping = null;
        int rc = alignment == 0
            ? Libc.MapAnonymous((nuint)length, out nint address)
            : Libc.MapAligned((nuint)length, (nuint)alignment, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE, null, 0, out address);
        if (rc < 0)
        {
            return rc;
        }
        mapping = new EmulatedRegionMapping(region, regionOffset, address, length, fileOffset);
        return 0;
    }

    public override byte Read8(ulong offset) => (byte)Read(offset, 1);

    public override ushort Read16(ulong offset) => (ushort)Read(offset, 2);

    public override uint Read32(ulong offset) => (uint)Read(offset, 4);

    public override ulong Read64(ulong offset) => Read(offset, 8);

    public override void Write8(ulong offset, byte value) => Write(offset, 1, value);

    public override void Write16(ulong offset, ushort value) => Write(offset, 2, value);

    public override void Write32(ulong offset, uint value) => Write(offset, 4, value);

    public override void Write64(ulong offset, ulong value) => Write(offset, 8, value);

    /// <summary>Holds the mapped file open, as a vma holds its <c>struct file</c>: the device is not released (its
    /// close_device does not run) while the mapping exists, even after its fd was closed. The reference is a duplicate
    /// of the fd, closed when the mapping is unmapped.</summary>
    /// <returns>0, or <c>-errno</c> when the fd could not be duplicated.</returns>
    internal int HoldFile(SafeHandle fd)
    {
        int duplicate = Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0);
        if (duplicate < 0)
        {
            return -Libc.LastErrno;
        }
        _file = new SafeFileHandle(duplicate, ownsHandle: true);
        return 0;
    }

    // Each access holds the mapping (a disposal meanwhile unmaps after it): an access racing a detach either completes on
    // the still-open device or fails with ObjectDisposedException, as a CPU access to a vma that munmap has not yet removed.
    private ulong Read(ulong offset, int width)
    {
        CheckAccess(offset, (uint)width);
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            return _region.Kernel.RunDeviceAccess(
                static s => s.Region.ReadMapped(s.Offset, s.Width), (Region: _region, Offset: _regionOffset + offset, Width: width));
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    private void Write(ulong offset, int width, ulong value)
    {
        CheckAccess(offset, (uint)width);
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            _ = _region.Kernel.RunDeviceAccess(
                static s =>
                {
                    s.Region.WriteMapped(s.Offset, s.Width, s.Value);
                    return 0;
                },
                (Region: _region, Offset: _regionOffset + offset, Width: width, Value: value));
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    protected override bool ReleaseMapping()
    {
        bool unmapped = Libc.munmap(handle, (nuint)_mappedLength) == 0;
        _file?.Dispose();
        return unmapped;
    }
}
