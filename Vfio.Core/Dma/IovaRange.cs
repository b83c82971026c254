// SPDX-License-Identifier: MIT
using System.Globalization;

namespace Vfio.Core;

/// <summary>
/// A range of I/O virtual addresses with inclusive bounds, as the kernel reports them (<c>struct vfio_iova_range</c>
/// in <c>VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE</c>, <c>struct iommu_iova_range</c> from <c>IOMMU_IOAS_IOVA_RANGES</c>):
/// every address from <see cref="Start"/> to <see cref="Last"/>, both included, so a range may end at 2^64 - 1.
/// </summary>
/// <remarks>
/// <see cref="Size"/> is a <see cref="UInt128"/>: the whole 64-bit space holds 2^64 bytes, one more than a
/// <see cref="ulong"/> can count. The default value is the one-byte range at IOVA 0.
/// </remarks>
/// <example>
/// <code>
/// var msi = new IovaRange(0xfee0_0000, 0xfeef_ffff);          // as the kernel reports it
/// var buffer = IovaRange.FromStartSize(0x40000, 4096);        // [0x40000-0x40fff]
/// bool clash = msi.Overlaps(buffer);                           // false
/// </code>
/// </example>
public readonly record struct IovaRange
{
    /// <summary>Creates the range from <paramref name="start"/> to <paramref name="last"/>, both included.</summary>
    /// <param name="start">The first IOVA of the range.</param>
    /// <param name="last">The last IOVA of the range (not one past it).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="last"/> is below <paramref name="start"/>.</exception>
    public IovaRange(ulong start, ulong last)
    {
        if (last < start)
        {
            throw new ArgumentOutOfRangeException(nameof(last), last, string.Create(CultureInfo.InvariantCulture,
                $"The last IOVA 0x{last:x} is below the start 0x{start:x}; bounds are inclusive."));
        }
        Start = start;
        Last = last;
    }

    /// <summary>The first IOVA of the range.</summary>
    public ulong Start { get; }

    /// <summary>The last IOVA of the range (inclusive).</summary>
    public ulong Last { get; }

    /// <summary>The number of bytes in the range, from 1 to 2^64.</summary>
    public UInt128 Size => (UInt128)(Last - Start) + 1;

    /// <summary>Creates the range of <paramref name="size"/> bytes that starts at <paramref name="start"/>.</summary>
    /// <param name="start">The first IOVA.</param>
    /// <param name="size">The number of bytes, at least 1.</param>
    /// <returns>The range <c>[start, start + size - 1]</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0, or the range would run past 2^64 - 1.</exception>
    public static IovaRange FromStartSize(ulong start, ulong size)
    {
        ArgumentOutOfRangeException.ThrowIfZero(size);
        if (size - 1 > ulong.MaxValue - start)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, string.Create(CultureInfo.InvariantCulture,
                $"0x{size:x} bytes from IOVA 0x{start:x} run past the end of the 64-bit IOVA space."));
        }
        return new IovaRange(start, start + (size - 1));
    }

    /// <summary>Whether <paramref name="iova"/> lies in the range.</summary>
    /// <param name="iova">An IOVA.</param>
    /// <returns>True when <see cref="Start"/> ≤ <paramref name="iova"/> ≤ <see cref="Last"/>.</returns>
    public bool Contains(ulong iova) => iova >= Start && iova <= Last;

    /// <summary>Whether every address of <paramref name="other"/> lies in this range.</summary>
    /// <param name="other">Another range.</param>
    /// <returns>True when <paramref name="other"/> is a sub-range of this one.</returns>
    public bool Contains(IovaRange other) => other.Start >= Start && other.Last <= Last;

    /// <summary>Whether this range and <paramref name="other"/> share at least one address.</summary>
    /// <param name="other">Another range.</param>
    /// <returns>True when they overlap.</returns>
    public bool Overlaps(IovaRange other) => other.Start <= Last && Start <= other.Last;

    /// <summary>Deconstructs the range into its bounds.</summary>
    /// <param name="start">The first IOVA.</param>
    /// <param name="last">The last IOVA (inclusive).</param>
    public void Deconstruct(out ulong start, out ulong last)
    {
        start = Start;
        last = Last;
    }

    /// <summary>The range in hexadecimal with inclusive bounds, e.g. <c>[0xfee00000-0xfeefffff]</c>.</summary>
    /// <returns>The formatted range.</returns>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"[0x{Start:x}-0x{Last:x}]");
}
