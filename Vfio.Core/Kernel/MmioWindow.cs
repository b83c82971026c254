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
/// unsigned compare that check both alignment and bounds (for 32-bit accesses against a limit kept in that unit, so
/// the hot loop needs no other arithmetic).
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
    // The fast path reads only _base and _fastWords: an access that passes the bounds check against _fastWords is a
    // load or store at _base + offset. _fastWords is the window's length in 4-byte units (rounded down) for direct
    // mappings and 0 for routed ones and closed windows, so every access to those takes the out-of-line slow path,
    // which routes it to _mapping's accessors or throws. Keeping the limit in the unit of the hot 32-bit accesses lets
    // their check be one rotate and one compare against a register, with no shift of the limit the JIT would have to
    // hoist (it does not when the loop's registers are taken). The other widths scale it: offset >> 2 for bytes,
    // rotate-by-1 >> 1 for 16 bits, the limit >> 1 for 64 bits; accesses in the window's last 1-3 bytes past the
    // 4-byte units take the slow path, which serves them. A routed window has no address, so its _base holds the
    // window's start in the mapping instead. _mapping is null once closed (and in a default window). Four fields, so
    // the JIT promotes the struct.
    private readonly byte* _base;
    private ulong _fastWords;
    private MemoryMapping? _mapping;
    private ulong _length;

    internal MmioWindow(MemoryMapping mapping, byte* address, ulong start, ulong length)
    {
        _mapping = mapping;
        _base = address == null ? (byte*)start : address;
        _length = length;
        _fastWords = address == null ? 0 : length >> 2;
    }

    /// <summary>The window's length in bytes (0 once disposed).</summary>
    public readonly ulong Length => _length;

    /// <summary>The offset of the window's start within its <see cref="MemoryMapping"/>.</summary>
    public readonly ulong MappingOffset => StartOf(_mapping, _base);

    /// <summary>Reads one byte at window offset <paramref name="offset"/>.</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly byte Read8(ulong offset)
    {
        if (offset >> 2 >= _fastWords)
        {
            return (byte)ReadSlow(_mapping, _base, _length, offset, 1);
        }
        return Volatile.Read(ref *(_base + offset));
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
        if (BitOperations.RotateRight(offset, 1) >> 1 >= _fastWords)
        {
            return (ushort)ReadSlow(_mapping, _base, _length, offset, 2);
        }
        return LittleEndian(Volatile.Read(ref *(ushort*)(_base + offset)));
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
        if (BitOperations.RotateRight(offset, 2) >= _fastWords)
        {
            return (uint)ReadSlow(_mapping, _base, _length, offset, 4);
        }
        return LittleEndian(Volatile.Read(ref *(uint*)(_base + offset)));
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
        if (BitOperations.RotateRight(offset, 3) >= _fastWords >> 1)
        {
            return (ulong)ReadSlow(_mapping, _base, _length, offset, 8);
        }
        return LittleEndian(Volatile.Read(ref *(ulong*)(_base + offset)));
    }

    /// <summary>Writes one byte at window offset <paramref name="offset"/>.</summary>
    /// <param name="offset">The byte offset in the window.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is outside the window.</exception>
    /// <exception cref="ObjectDisposedException">The window was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Write8(ulong offset, byte value)
    {
        if (offset >> 2 >= _fastWords)
        {
            WriteSlow(_mapping, _base, _length, offset, 1, value);
            return;
        }
        Volatile.Write(ref *(_base + offset), value);
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
        if (BitOperations.RotateRight(offset, 1) >> 1 >= _fastWords)
        {
            WriteSlow(_mapping, _base, _length, offset, 2, value);
            return;
        }
        Volatile.Write(ref *(ushort*)(_base + offset), LittleEndian(value));
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
        if (BitOperations.RotateRight(offset, 2) >= _fastWords)
        {
            WriteSlow(_mapping, _base, _length, offset, 4, value);
            return;
        }
        Volatile.Write(ref *(uint*)(_base + offset), LittleEndian(value));
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
        if (BitOperations.RotateRight(offset, 3) >= _fastWords >> 1)
        {
            WriteSlow(_mapping, _base, _length, offset, 8, value);
            return;
        }
        Volatile.Write(ref *(ulong*)(_base + offset), LittleEndian(value));
    }

    /// <summary>Releases the window's hold on the mapping (the mapping is unmapped now if it was disposed meanwhile).
    /// Later accesses throw <see cref="ObjectDisposedException"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dispose()
    {
        // A zero length fails every access's bounds check, whose throw helper then reports the window closed; _base is
        // left as it is so the loop never has to reload it.
        MemoryMapping? mapping = _mapping;
        _mapping = null;
        _fastWords = 0;
        _length = 0;
        mapping?.DangerousRelease();
    }

    /// <inheritdoc/>
    public override readonly string ToString() => _mapping is null
        ? "MmioWindow (closed)"
        : $"MmioWindow of 0x{_length:X} bytes at 0x{MappingOffset:X} of a 0x{_mapping.Length:X}-byte mapping";

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ulong ReadSlow(MemoryMapping? mapping, byte* @base, ulong length, ulong offset, uint width)
    {
        CheckSlow(mapping, @base, length, offset, width);
        if (!mapping.RoutesAccesses)
        {
            // A direct window's in-window access here is one in its last 1-3 bytes (past the fast path's 4-byte units).
            return width switch
            {
                1 => Volatile.Read(ref *(@base + offset)),
                2 => LittleEndian(Volatile.Read(ref *(ushort*)(@base + offset))),
                4 => LittleEndian(Volatile.Read(ref *(uint*)(@base + offset))),
                _ => LittleEndian(Volatile.Read(ref *(ulong*)(@base + offset))),
            };
        }
        ulong at = (ulong)@base + offset;
        return width switch
        {
            1 => mapping.Read8(at),
            2 => mapping.Read16(at),
            4 => mapping.Read32(at),
            _ => mapping.Read64(at),
        };
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void WriteSlow(MemoryMapping? mapping, byte* @base, ulong length, ulong offset, uint width, ulong value)
    {
        CheckSlow(mapping, @base, length, offset, width);
        if (!mapping.RoutesAccesses)
        {
            switch (width)
            {
                case 1:
                    Volatile.Write(ref *(@base + offset), (byte)value);
                    break;
                case 2:
                    Volatile.Write(ref *(ushort*)(@base + offset), LittleEndian((ushort)value));
                    break;
                case 4:
                    Volatile.Write(ref *(uint*)(@base + offset), LittleEndian((uint)value));
                    break;
                default:
                    Volatile.Write(ref *(ulong*)(@base + offset), LittleEndian(value));
                    break;
            }
            return;
        }
        ulong at = (ulong)@base + offset;
        switch (width)
        {
            case 1:
                mapping.Write8(at, (byte)value);
                break;
            case 2:
                mapping.Write16(at, (ushort)value);
                break;
            case 4:
                mapping.Write32(at, (uint)value);
                break;
            default:
                mapping.Write64(at, value);
                break;
        }
    }

    // The window's start in its mapping: a routed window keeps it in _base, a direct one is an address in the mapping.
    private static ulong StartOf(MemoryMapping? mapping, byte* @base)
        => mapping is null ? 0 : mapping.RoutesAccesses ? (ulong)@base : (ulong)(@base - (byte*)mapping.DangerousGetHandle());

    // The checks of the slow path: closed, misaligned, out of the window.
    private static void CheckSlow([NotNull] MemoryMapping? mapping, byte* @base, ulong length, ulong offset, uint width)
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
        if (offset >= length || length - offset < width)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"A {width}-byte access at window offset 0x{offset:X} is outside the 0x{length:X}-byte window (mapping offset 0x{StartOf(mapping, @base):X}); acquire a window that covers it.");
        }
    }

    private static ushort LittleEndian(ushort value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);

    private static uint LittleEndian(uint value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);

    private static ulong LittleEndian(ulong value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
}
