// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Vfio.Core;

/// <summary>
/// A scoped window onto part of a <see cref="MemoryMapping"/> for hot register loops: acquiring it checks the mapping
/// and the window's bounds once and holds the mapping mapped (one SafeHandle reference) until it is disposed; each
/// access is then a volatile load or store at the window's address plus the offset, after one rotate and one
/// unsigned compare that check both alignment and bounds.
/// </summary>
/// <remarks>
/// <para>
/// Get one from <see cref="VfioRegionMapping.Acquire(ulong, ulong)"/> or <see cref="MemoryMapping.Acquire(ulong, ulong)"/>
/// and dispose it (<c>using</c>) when the loop ends. Offsets are relative to the window's start, which is 8-byte
/// aligned, so an access that is naturally aligned in the window is naturally aligned on the device.
/// </para>
/// <para>
/// <b>Lifetime.</b> Disposing the mapping while a window is open does not unmap it: the unmap happens when the last
/// window closes. Acquiring a window on a disposed mapping throws <see cref="ObjectDisposedException"/>, and so does
/// an access through a disposed (or default) window. It is a <c>ref struct</c> so it cannot outlive the method that opened
/// it; do not copy it (each copy would release the reference on dispose).
/// </para>
/// <para>
/// <b>Emulated mappings.</b> A mapping whose accesses are routed to a device model (<see cref="MemoryMapping.RoutesAccesses"/>,
/// e.g. the simulator's BARs) is not read directly: the window calls its virtual accessors, so emulated registers
/// behave exactly as through <see cref="MemoryMapping.Read32(ulong)"/>.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using VfioRegionMapping bar0 = device.MapRegion(0);
/// using MmioWindow regs = bar0.Acquire(0, 0x100);
/// while ((regs.Read32(0x20) &amp; 1) != 0)
/// {
/// }
/// </code>
/// </example>
public unsafe ref struct MmioWindow
{
    // Direct mappings: _base is the window's first byte. Routed mappings: _base is null and accesses go to _mapping at
    // _start + offset. _mapping is null once disposed (and in a default window).
    private readonly byte* _base;
    private MemoryMapping? _mapping;
    private readonly ulong _start;
    private ulong _length;

    internal MmioWindow(MemoryMapping mapping, byte* address, ulong start, ulong length)
    {
        _mapping = mapping;
        _base = address;
        _start = start;
        _length = length;
    }

    /// <summary>The window's length in bytes (0 once disposed).</summary>
    public readonly ulong Length => _length;

    /// <summary>The offset of the window's start within its <see cref="MemoryMapping"/>.</summary>
    public readonly ulong MappingOffset => _start;

    /// <summary>Reads one byte at window offset <paramref name="offset"/>.</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly byte Read8(ulong offset)
    {
        if (offset >= _length)
        {
            ThrowBadAccess(_mapping, _start, _length, offset, 1);
        }
        byte* p = _base;
        return p != null ? Volatile.Read(ref *(p + offset)) : _mapping!.Read8(_start + offset);
    }

    /// <summary>Reads a little-endian 16-bit value at window offset <paramref name="offset"/> (2-byte aligned).</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ArgumentException">The offset is not 2-byte aligned.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ushort Read16(ulong offset)
    {
        if (BitOperations.RotateRight(offset, 1) >= _length >> 1)
        {
            ThrowBadAccess(_mapping, _start, _length, offset, 2);
        }
        byte* p = _base;
        return p != null ? LittleEndian(Volatile.Read(ref *(ushort*)(p + offset))) : _mapping!.Read16(_start + offset);
    }

    /// <summary>Reads a little-endian 32-bit value at window offset <paramref name="offset"/> (4-byte aligned).</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ArgumentException">The offset is not 4-byte aligned.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly uint Read32(ulong offset)
    {
        if (BitOperations.RotateRight(offset, 2) >= _length >> 2)
        {
            ThrowBadAccess(_mapping, _start, _length, offset, 4);
        }
        byte* p = _base;
        return p != null ? LittleEndian(Volatile.Read(ref *(uint*)(p + offset))) : _mapping!.Read32(_start + offset);
    }

    /// <summary>Reads a little-endian 64-bit value at window offset <paramref name="offset"/> (8-byte aligned).</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ArgumentException">The offset is not 8-byte aligned.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Read64(ulong offset)
    {
        if (BitOperations.RotateRight(offset, 3) >= _length >> 3)
        {
            ThrowBadAccess(_mapping, _start, _length, offset, 8);
        }
        byte* p = _base;
        return p != null ? LittleEndian(Volatile.Read(ref *(ulong*)(p + offset))) : _mapping!.Read64(_start + offset);
    }

    /// <summary>Writes one byte at window offset <paramref name="offset"/>.</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Write8(ulong offset, byte value)
    {
        if (offset >= _length)
        {
            ThrowBadAccess(_mapping, _start, _length, offset, 1);
        }
        byte* p = _base;
        if (p != null)
        {
            Volatile.Write(ref *(p + offset), value);
        }
        else
        {
            _mapping!.Write8(_start + offset, value);
        }
    }

    /// <summary>Writes a little-endian 16-bit value at window offset <paramref name="offset"/> (2-byte aligned).</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ArgumentException">The offset is not 2-byte aligned.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Write16(ulong offset, ushort value)
    {
        if (BitOperations.RotateRight(offset, 1) >= _length >> 1)
        {
            ThrowBadAccess(_mapping, _start, _length, offset, 2);
        }
        byte* p = _base;
        if (p != null)
        {
            Volatile.Write(ref *(ushort*)(p + offset), LittleEndian(value));
        }
        else
        {
            _mapping!.Write16(_start + offset, value);
        }
    }

    /// <summary>Writes a little-endian 32-bit value at window offset <paramref name="offset"/> (4-byte aligned).</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ArgumentException">The offset is not 4-byte aligned.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Write32(ulong offset, uint value)
    {
        if (BitOperations.RotateRight(offset, 2) >= _length >> 2)
        {
            ThrowBadAccess(_mapping, _start, _length, offset, 4);
        }
        byte* p = _base;
        if (p != null)
        {
            Volatile.Write(ref *(uint*)(p + offset), LittleEndian(value));
        }
        else
        {
            _mapping!.Write32(_start + offset, value);
        }
    }

    /// <summary>Writes a little-endian 64-bit value at window offset <paramref name="offset"/> (8-byte aligned).</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ArgumentException">The offset is not 8-byte aligned.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Write64(ulong offset, ulong value)
    {
        if (BitOperations.RotateRight(offset, 3) >= _length >> 3)
        {
            ThrowBadAccess(_mapping, _start, _length, offset, 8);
        }
        byte* p = _base;
        if (p != null)
        {
            Volatile.Write(ref *(ulong*)(p + offset), LittleEndian(value));
        }
        else
        {
            _mapping!.Write64(_start + offset, value);
        }
    }

    // The bounds check of a W-byte access is one rotate and one unsigned compare: rotating the offset right by log2(W)
    // moves any misaligned low bits to the top, so the result is below length / W exactly when the offset is aligned
    // and offset + W <= length. The throw helper is static and takes the fields by value, so the window is never
    // address-exposed and the JIT keeps its fields in registers across the loop.

    /// <summary>Releases the window's hold on the mapping (the mapping is unmapped now if it was disposed meanwhile).
    /// Later accesses throw <see cref="ObjectDisposedException"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dispose()
    {
        // A zero length fails every access's bounds check, whose throw helper then reports the window closed; _base is
        // left as it is so the loop never has to reload it.
        MemoryMapping? mapping = _mapping;
        _mapping = null;
        _length = 0;
        mapping?.DangerousRelease();
    }

    /// <inheritdoc/>
    public override readonly string ToString() => _mapping is null
        ? "MmioWindow (closed)"
        : $"MmioWindow of 0x{_length:X} bytes at 0x{_start:X} of a 0x{_mapping.Length:X}-byte mapping";

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadAccess(MemoryMapping? mapping, ulong start, ulong length, ulong offset, uint width)
    {
        if (mapping is null)
        {
            throw new ObjectDisposedException(nameof(MmioWindow),
                "The MMIO window is not open (it was disposed, or is a default value): acquire one from the mapping and access it inside its using scope.");
        }
        if ((offset & (width - 1)) != 0)
        {
            throw new ArgumentException($"A {width}-byte access at window offset 0x{offset:X} is not {width}-byte aligned.", nameof(offset));
        }
        throw new ArgumentOutOfRangeException(nameof(offset), offset,
            $"A {width}-byte access at window offset 0x{offset:X} is outside the 0x{length:X}-byte window (mapping offset 0x{start:X}); acquire a window that covers it.");
    }

    private static ushort LittleEndian(ushort value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);

    private static uint LittleEndian(uint value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);

    private static ulong LittleEndian(ulong value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
}
