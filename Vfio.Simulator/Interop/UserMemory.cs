// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;
using Vfio.Core;

namespace Vfio.Simulator.Interop;

/// <summary>
/// The simulated kernel's <c>copy_from_user</c>/<c>copy_to_user</c> and its devices' DMA: reads and writes of this
/// process's memory at addresses the caller supplied. A null address is <c>EFAULT</c>; other bad addresses cannot
/// be detected in-process and crash, as a wild pointer in user space would.
/// </summary>
internal static unsafe class UserMemory
{
    /// <summary>Copies <paramref name="destination"/>.Length bytes from <paramref name="address"/>. Returns 0 or <c>-EFAULT</c>.</summary>
    internal static int CopyFrom(nint address, Span<byte> destination)
    {
        if (address == 0 && destination.Length > 0)
        {
            return -(int)Errno.EFAULT;
        }
        new ReadOnlySpan<byte>((void*)address, destination.Length).CopyTo(destination);
        return 0;
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="address"/>. Returns 0 or <c>-EFAULT</c>.</summary>
    internal static int CopyTo(nint address, ReadOnlySpan<byte> source)
    {
        if (address == 0 && source.Length > 0)
        {
            return -(int)Errno.EFAULT;
        }
        source.CopyTo(new Span<byte>((void*)address, source.Length));
        return 0;
    }

    /// <summary>Reads the first <paramref name="length"/> bytes of a <typeparamref name="T"/> at <paramref name="address"/>;
    /// the rest of the result is zero (the kernel's copy of <c>minsz</c> bytes).</summary>
    internal static int Read<T>(nint address, int length, out T value)
        where T : unmanaged
    {
        value = default;
        if (address == 0)
        {
            return -(int)Errno.EFAULT;
        }
        int n = Math.Min(length, sizeof(T));
        new ReadOnlySpan<byte>((void*)address, n).CopyTo(new Span<byte>(Unsafe.AsPointer(ref value), n));
        return 0;
    }

    /// <summary>Writes the first <paramref name="length"/> bytes of <paramref name="value"/> to <paramref name="address"/>.</summary>
    internal static int Write<T>(nint address, int length, in T value)
        where T : unmanaged
    {
        if (address == 0)
        {
            return -(int)Errno.EFAULT;
        }
        int n = Math.Min(length, sizeof(T));
        fixed (T* p = &value)
        {
            new ReadOnlySpan<byte>(p, n).CopyTo(new Span<byte>((void*)address, n));
        }
        return 0;
    }

    /// <summary>A view of process memory for a device's DMA; the caller guarantees the range is mapped.</summary>
    internal static Span<byte> Span(nint address, int length) => new((void*)address, length);

    /// <summary>Copies a NUL-terminated string of at most <paramref name="buffer"/>.Length bytes including the NUL;
    /// <paramref name="length"/> is its length without the NUL, or -1 when no NUL was found in that space.</summary>
    internal static int CopyFromString(nint address, Span<byte> buffer, out int length)
    {
        length = -1;
        if (address == 0)
        {
            return -(int)Errno.EFAULT;
        }
        byte* p = (byte*)address;
        for (int i = 0; i < buffer.Length; i++)
        {
            buffer[i] = p[i];
            if (p[i] == 0)
            {
                length = i;
                return 0;
            }
        }
        return 0;
    }
}
