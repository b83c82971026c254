// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// QEMU's <c>pci-testdev</c> (<c>hw/misc/pci-testdev.c</c>) with <c>membar=</c>: 1b36:0005, class 0x00ff00, conventional
/// PCI without capabilities or interrupts. BAR0 is 4 KiB of memory, BAR1 256 bytes of I/O ports (both carry the
/// device's test header, which this model does not drive: reads give 0, writes are dropped), BAR2 a 64-bit prefetchable
/// memory BAR of <see cref="MemoryBarSize"/> bytes with nothing behind it (QEMU backs it with an empty region:
/// reads give 0).
/// </summary>
public sealed class PciTestDevice : EmulatedPciDevice
{
    /// <summary>The size of BAR0 (memory).</summary>
    public const ulong MmioBarSize = 4096;

    /// <summary>The size of BAR1 (I/O ports).</summary>
    public const ulong IoBarSize = 256;

    private readonly PciBar?[] _bars;

    /// <summary>Creates the device.</summary>
    /// <param name="memoryBarSize">The size of BAR2 (QEMU's <c>membar=</c>, a power of two); the testbed uses 2 MiB.</param>
    public PciTestDevice(ulong memoryBarSize = 2 << 20)
    {
        MemoryBarSize = memoryBarSize;
        _bars = [new PciBar(MmioBarSize), PciBar.IoPorts(IoBarSize), new PciBar(memoryBarSize, is64Bit: true, prefetchable: true), null, null, null];
    }

    /// <summary>The size of BAR2.</summary>
    public ulong MemoryBarSize { get; }

    /// <inheritdoc/>
    public override ushort VendorId => 0x1b36;

    /// <inheritdoc/>
    public override ushort DeviceId => 0x0005;

    /// <inheritdoc/>
    public override uint ClassCode => 0x00ff00;

    /// <inheritdoc/>
    public override IReadOnlyList<PciBar?> Bars => _bars;

    /// <inheritdoc/>
    public override byte InterruptPin => 0;

    /// <inheritdoc/>
    protected override ulong ReadBar(int bar, ulong offset, int width) => 0;

    /// <inheritdoc/>
    protected override void WriteBar(int bar, ulong offset, int width, ulong value)
    {
    }
}
