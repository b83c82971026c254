// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// QEMU's <c>qemu-xhci</c> with <c>msi=on,msix=off</c> as VFIO sees it (<c>hw/usb/hcd-xhci-pci.c</c>): 1b36:000d, class
/// 0x0c0330, a PCI Express endpoint whose MSI capability offers 16 vectors (QEMU's default <c>intrs=16</c>) with 64-bit
/// addresses and no per-vector masking, INTx pin A, and BAR0 (16 KiB, 64-bit) for the controller's registers, which this
/// model does not drive (reads give 0, writes are dropped).
/// </summary>
/// <remarks>The testbed's <c>pci-intremap-off</c> shape has it at <see cref="SimulatedMachines.MultiMessageMsi"/>: the
/// one device there whose MSI has more than one vector, so the kernel's answer to more MSI vectors than the host can
/// give (one, on x86 without interrupt remapping) is seen on the real kernel.</remarks>
public sealed class XhciMsiDevice : EmulatedPciDevice
{
    /// <summary>The number of MSI vectors the capability offers.</summary>
    public const int Vectors = 16;

    /// <summary>The size of BAR0.</summary>
    public const ulong RegisterBarSize = 0x4000;

    private readonly PciBar?[] _bars = [new PciBar(RegisterBarSize, is64Bit: true), null, null, null, null, null];

    /// <inheritdoc/>
    public override ushort VendorId => 0x1b36;

    /// <inheritdoc/>
    public override ushort DeviceId => 0x000d;

    /// <inheritdoc/>
    public override uint ClassCode => 0x0c0330;

    /// <inheritdoc/>
    public override IReadOnlyList<PciBar?> Bars => _bars;

    /// <inheritdoc/>
    public override int MsiVectors => Vectors;

    /// <inheritdoc/>
    public override bool IsPciExpress => true;

    /// <inheritdoc/>
    protected override ulong ReadBar(int bar, ulong offset, int width) => 0;

    /// <inheritdoc/>
    protected override void WriteBar(int bar, ulong offset, int width, ulong value)
    {
    }
}
