// SPDX-License-Identifier: MIT
using System.Security.Cryptography;

namespace Vfio.Simulator;

/// <summary>
/// A virtio-mmio entropy device as QEMU's <c>-device virtio-rng-device</c> on a microvm (the transport is
/// <see cref="VirtioMmioDevice"/>'s).
/// </summary>
/// <remarks>
/// Device ID 4, no configuration space. The device offers only <c>VIRTIO_F_VERSION_1</c> (QEMU's offers
/// 0x0000010130000000: also INDIRECT_DESC, EVENT_IDX and RING_RESET, which the model does not implement). It fills
/// every device-writable descriptor of a chain with random bytes by DMA.
/// </remarks>
public sealed class VirtioRngDevice : VirtioMmioDevice
{
    /// <summary>The virtio device ID of an entropy source.</summary>
    public const uint EntropyDeviceId = 4;

    /// <summary>Creates the device.</summary>
    public VirtioRngDevice()
        : base(EntropyDeviceId, 0)
    {
    }

    private protected override ReadOnlySpan<byte> Config => [];

    private protected override uint? Serve(IReadOnlyList<VirtqDescriptor> chain)
    {
        uint written = 0;
        foreach (VirtqDescriptor d in chain)
        {
            if (d.DeviceWritable && d.Length > 0)
            {
                byte[] entropy = RandomNumberGenerator.GetBytes((int)Math.Min(d.Length, 1u << 20));
                if (!DmaWrite(d.Address, entropy))
                {
                    return null;
                }
                written += (uint)entropy.Length;
            }
        }
        return written;
    }
}
