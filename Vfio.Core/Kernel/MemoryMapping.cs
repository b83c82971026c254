// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Vfio.Core;

/// <summary>
/// A mapping of a device region (or part of one) into the process, owned as a <see cref="SafeBuffer"/>: disposing
/// it unmaps it, and an access in flight keeps it mapped until the access ends.
/// </summary>
/// <remarks>
/// <para>
/// The accessors are volatile and little-endian, of the width given (VFIO regions are little-endian; device
/// registers must be accessed at their natural width). They are virtual so a kernel model can route accesses to an
/// emulated device; the Linux implementation reads and writes the mapped memory directly.
/// </para>
/// <para>
/// <b>Memory safety.</b> The memory is the device's: reads may have side effects and writes take effect on the
/// device. The bounds of every access are checked against <see cref="Length"/>; an unaligned access is refused,
/// because PCI devices may not support it.
/// </para>
/// <para>
/// <b>Hot loops.</b> Each accessor call checks the access and takes and drops a SafeHandle reference. A loop of
/// register accesses should <see cref="Acquire(ulong, ulong)"/> an <see cref="MmioWindow"/> instead: it is checked and
/// referenced once, and each access through it is a plain volatile load or store.
/// </para>
/// </remarks>
public abstract class MemoryMapping : SafeBuffer
{
    /// <summary>Creates an empty mapping; the implementation calls <see cref="SetMapping"/>.</summary>
    protected MemoryMapping()
        : base(ownsHandle: true)
    {
    }

    /// <summary>Creates an empty mapping whose accessors may be routed elsewhere; the implementation calls
    /// <see cref="SetMapping"/>.</summary>
    /// <param name="routesAccesses">True when the implementation overrides the accessors to reach something other than
    /// the mapped memory (a device model): an <see cref="MmioWindow"/> then calls the accessors instead of reading the
    /// memory directly.</param>
    protected MemoryMapping(bool routesAccesses)
        : base(ownsHandle: true)
    {
        RoutesAccesses = routesAccesses;
    }

    /// <summary>Whether the accessors are routed to something other than the mapped memory (an emulated device), so
    /// windows must go through them.</summary>
    public bool RoutesAccesses { get; }

    /// <summary>Whether the memory is unmapped: the mapping was disposed and the last access or window that held it
    /// has ended (<see cref="ReleaseMapping"/> ran).</summary>
    internal bool IsUnmapped => Volatile.Read(ref _unmapped) != 0;

    private int _unmapped;

    /// <summary>Unmaps the memory. Called once: when the mapping is disposed and no access or window holds it any
    /// more.</summary>
    /// <returns>True when the memory was unmapped.</returns>
    protected abstract bool ReleaseMapping();

    /// <summary>Unmaps the memory (<see cref="ReleaseMapping"/>) and records that it is unmapped, which a device's
    /// disposal waits for: a device region's mapping holds the device file open.</summary>
    /// <returns>What <see cref="ReleaseMapping"/> returned.</returns>
    protected sealed override bool ReleaseHandle()
    {
        try
        {
            return ReleaseMapping();
        }
        finally
        {
            Volatile.Write(ref _unmapped, 1);
        }
    }

    /// <summary>The mapping's length in bytes.</summary>
    public ulong Length { get; private set; }

    /// <summary>The file offset the mapping starts at.</summary>
    public long FileOffset { get; private set; }

    /// <summary>Records the mapped address and length.</summary>
    /// <param name="address">The start of the mapping.</param>
    /// <param name="length">Its length in bytes.</param>
    /// <param name="fileOffset">The file offset it maps.</param>
    protected void SetMapping(nint address, ulong length, long fileOffset)
    {
        SetHandle(address);
        Initialize(length);
        Length = length;
        FileOffset = fileOffset;
    }

    /// <summary>Reads one byte at <paramref name="offset"/>.</summary>
    /// <param name="offset">The byte offset in the mapping.</param>
    public virtual unsafe byte Read8(ulong offset)
    {
        bool added = false;
        try
        {
            byte value = Volatile.Read(ref *(byte*)Enter(offset, 1, ref added));
            return value;
        }
        finally
        {
            Leave(added);
        }
    }

    /// <summary>Writes one byte at <paramref name="offset"/>.</summary>
    /// <param name="offset">The byte offset in the mapping.</param>
    /// <param name="value">The value.</param>
    public virtual unsafe void Write8(ulong offset, byte value)
    {
        bool added = false;
        try
        {
            Volatile.Write(ref *(byte*)Enter(offset, 1, ref added), value);
        }
        finally
        {
            Leave(added);
        }
    }

    /// <summary>Reads a little-endian 16-bit value at <paramref name="offset"/> (2-byte aligned).</summary>
    /// <param name="offset">The byte offset in the mapping.</param>
    public virtual unsafe ushort Read16(ulong offset)
    {
        bool added = false;
        try
        {
            ushort value = Volatile.Read(ref *(ushort*)Enter(offset, 2, ref added));
            return ToLittleEndian(value);
        }
        finally
        {
            Leave(added);
        }
    }

    /// <summary>Writes a little-endian 16-bit value at <paramref name="offset"/> (2-byte aligned).</summary>
    /// <param name="offset">The byte offset in the mapping.</param>
    /// <param name="value">The value.</param>
    public virtual unsafe void Write16(ulong offset, ushort value)
    {
        bool added = false;
        try
        {
            Volatile.Write(ref *(ushort*)Enter(offset, 2, ref added), ToLittleEndian(value));
        }
        finally
        {
            Leave(added);
        }
    }

    /// <summary>Reads a little-endian 32-bit value at <paramref name="offset"/> (4-byte aligned).</summary>
    /// <param name="offset">The byte offset in the mapping.</param>
    public virtual unsafe uint Read32(ulong offset)
    {
        bool added = false;
        try
        {
            uint value = Volatile.Read(ref *(uint*)Enter(offset, 4, ref added));
            return ToLittleEndian(value);
        }
        finally
        {
            Leave(added);
        }
    }

    /// <summary>Writes a little-endian 32-bit value at <paramref name="offset"/> (4-byte aligned).</summary>
    /// <param name="offset">The byte offset in the mapping.</param>
    /// <param name="value">The value.</param>
    public virtual unsafe void Write32(ulong offset, uint value)
    {
        bool added = false;
        try
        {
            Volatile.Write(ref *(uint*)Enter(offset, 4, ref added), ToLittleEndian(value));
        }
        finally
        {
            Leave(added);
        }
    }

    /// <summary>Reads a little-endian 64-bit value at <paramref name="offset"/> (8-byte aligned).</summary>
    /// <param name="offset">The byte offset in the mapping.</param>
    public virtual unsafe ulong Read64(ulong offset)
    {
        bool added = false;
        try
        {
            ulong value = Volatile.Read(ref *(ulong*)Enter(offset, 8, ref added));
            return ToLittleEndian(value);
        }
        finally
        {
            Leave(added);
        }
    }

    /// <summary>Writes a little-endian 64-bit value at <paramref name="offset"/> (8-byte aligned).</summary>
    /// <param name="offset">The byte offset in the mapping.</param>
    /// <param name="value">The value.</param>
    public virtual unsafe void Write64(ulong offset, ulong value)
    {
        bool added = false;
        try
        {
            Volatile.Write(ref *(ulong*)Enter(offset, 8, ref added), ToLittleEndian(value));
        }
        finally
        {
            Leave(added);
        }
    }

    /// <summary>Opens a window onto the whole mapping for a loop of accesses (see <see cref="MmioWindow"/>).</summary>
    /// <returns>The window; dispose it when the loop ends.</returns>
    /// <exception cref="ObjectDisposedException">The mapping was disposed.</exception>
    public MmioWindow Acquire() => Acquire(0, Length);

    /// <summary>Opens a window of <paramref name="length"/> bytes at <paramref name="offset"/> for a loop of accesses:
    /// the mapping stays mapped until the window is disposed, and the bounds are checked here, once.</summary>
    /// <param name="offset">The window's start in the mapping (8-byte aligned).</param>
    /// <param name="length">The window's length in bytes.</param>
    /// <returns>The window; dispose it when the loop ends.</returns>
    /// <exception cref="ObjectDisposedException">The mapping was disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The window is empty or not inside the mapping.</exception>
    /// <exception cref="ArgumentException"><paramref name="offset"/> is not 8-byte aligned.</exception>
    public unsafe MmioWindow Acquire(ulong offset, ulong length)
    {
        ObjectDisposedException.ThrowIf(IsClosed, this);
        ArgumentOutOfRangeException.ThrowIfZero(length);
        if (offset > Length || Length - offset < length)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length,
                $"A 0x{length:X}-byte window at 0x{offset:X} is outside the 0x{Length:X}-byte mapping.");
        }
        if ((offset & 7) != 0)
        {
            throw new ArgumentException($"A window must start 8-byte aligned (0x{offset:X} is not), so aligned accesses in it are aligned on the device.", nameof(offset));
        }
        bool added = false;
        // Throws ObjectDisposedException if a dispose won the race since the check above.
        DangerousAddRef(ref added);
        return new MmioWindow(this, RoutesAccesses ? null : (byte*)handle + offset, offset, length);
    }

    private unsafe byte* Enter(ulong offset, uint width, ref bool added)
    {
        CheckAccess(offset, width);
        DangerousAddRef(ref added);
        return (byte*)handle + offset;
    }

    private void Leave(bool added)
    {
        if (added)
        {
            DangerousRelease();
        }
    }

    /// <summary>Checks that an access of <paramref name="width"/> bytes at <paramref name="offset"/> is inside the
    /// mapping and naturally aligned.</summary>
    /// <param name="offset">The byte offset.</param>
    /// <param name="width">The access width: 1, 2, 4 or 8.</param>
    protected void CheckAccess(ulong offset, uint width)
    {
        if (offset > Length || Length - offset < width)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"A {width}-byte access at 0x{offset:X} is outside the 0x{Length:X}-byte mapping.");
        }
        if ((offset & (width - 1)) != 0)
        {
            throw new ArgumentException($"A {width}-byte access at 0x{offset:X} is not {width}-byte aligned.", nameof(offset));
        }
    }

    private static ushort ToLittleEndian(ushort value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);

    private static uint ToLittleEndian(uint value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);

    private static ulong ToLittleEndian(ulong value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
}
