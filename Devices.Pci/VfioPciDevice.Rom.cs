// SPDX-License-Identifier: MIT
using System.Diagnostics.CodeAnalysis;
using Vfio.Core;

namespace Vfio.Devices.Pci;

public sealed partial class VfioPciDevice
{
    /// <summary>
    /// Whether the device has an expansion ROM the kernel can read: vfio-pci reports a ROM region of size 0 when the
    /// device has no ROM BAR, or when the ROM holds no valid image (no <c>0x55 0xAA</c> signature).
    /// </summary>
    /// <exception cref="VfioException">The region query failed.</exception>
    public bool HasRom => RomSize != 0;

    /// <summary>The ROM region's size in bytes (the ROM BAR's size; the image may be shorter, the rest reads as
    /// <c>0xFF</c>); 0 when there is no ROM.</summary>
    /// <exception cref="VfioException">The region query failed.</exception>
    public ulong RomSize => Device.GetRegion(VfioPciRegion.Rom).Size;

    /// <summary>Reads the whole expansion ROM.</summary>
    /// <param name="image">The ROM's bytes when the device has one; null otherwise.</param>
    /// <returns>True when the device has a ROM; false (and no exception) when it has none.</returns>
    /// <exception cref="VfioException">The ROM exists but the kernel could not read it.</exception>
    public bool TryReadRom([NotNullWhen(true)] out byte[]? image)
    {
        ulong size = RomSize;
        if (size == 0)
        {
            image = null;
            return false;
        }
        if (size > int.MaxValue)
        {
            throw new VfioException("pread", $"{Name} ROM", $"the ROM region has 0x{size:X} bytes, more than one array holds", "Read it in parts with ReadRom(offset, destination).");
        }
        image = new byte[size];
        ReadRom(0, image);
        return true;
    }

    /// <summary>Reads part of the expansion ROM.</summary>
    /// <param name="offset">The offset in the ROM.</param>
    /// <param name="destination">Where the bytes go.</param>
    /// <exception cref="InvalidOperationException">The device has no ROM (<see cref="HasRom"/> is false).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the ROM.</exception>
    /// <exception cref="VfioException">The kernel could not read it.</exception>
    public void ReadRom(ulong offset, Span<byte> destination)
    {
        ThrowIfDisposed();
        if (!HasRom)
        {
            throw new InvalidOperationException($"{Name} has no expansion ROM (its ROM region has size 0); check HasRom or use TryReadRom.");
        }
        Device.ReadRegion(VfioPciRegion.Rom, offset, destination);
    }
}
