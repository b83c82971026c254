// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// A PCI Express test device with MSI-X: BAR0 (16 KiB, 64-bit) holds a few registers, the MSI-X table at 0x2000
/// and the pending-bit array at 0x3000. It has INTx (pin A), function-level reset, and the ERR interrupt of PCIe.
/// </summary>
/// <remarks>
/// <para>Registers (32-bit): 0x00 identification <c>0x4d534958</c> ("MSIX"); 0x04 scratch (read/write, cleared by
/// reset); 0x08 write <c>n</c> to send MSI-X vector <c>n</c>; 0x0c write 1 to assert INTx, 0 to deassert it.</para>
/// <para>By default BAR0 declares a sparse-mmap capability of two areas that leave out the MSI-X table page, as a
/// variant driver reports; GET_REGION_INFO then shows both that capability and vfio-pci's MSIX_MAPPABLE.</para>
/// </remarks>
public sealed class MsixTestDevice : EmulatedPciDevice
{
    /// <summary>The identification register's value.</summary>
    public const uint Identification = 0x4d534958;

    /// <summary>The MSI-X table's offset in BAR0.</summary>
    public const uint TableOffset = 0x2000;

    /// <summary>The pending-bit array's offset in BAR0.</summary>
    public const uint PbaOffset = 0x3000;

    private readonly PciBar?[] _bars;
    private readonly int _vectors;
    private readonly int _hostVectorLimit;
    private uint _scratch;

    /// <summary>Creates the device.</summary>
    /// <param name="vectors">The MSI-X table size (1–128).</param>
    /// <param name="hostVectorLimit">How many vectors the host can allocate (see <see cref="EmulatedPciDevice.HostVectorLimit"/>).</param>
    /// <param name="sparseMmap">Declare the sparse-mmap areas that exclude the MSI-X table page.</param>
    public MsixTestDevice(int vectors = 8, int hostVectorLimit = int.MaxValue, bool sparseMmap = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vectors, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(vectors, 128);
        _vectors = vectors;
        _hostVectorLimit = hostVectorLimit;
        _bars =
        [
            new PciBar(0x4000, is64Bit: true)
            {
                SparseMmapAreas = sparseMmap ? [(0, TableOffset), (PbaOffset, 0x1000)] : null,
            },
            null, null, null, null, null,
        ];
    }

    /// <inheritdoc/>
    public override ushort VendorId => 0x1b36;

    /// <inheritdoc/>
    public override ushort DeviceId => 0x0bad;

    /// <inheritdoc/>
    public override uint ClassCode => 0xff0000;

    /// <inheritdoc/>
    public override IReadOnlyList<PciBar?> Bars => _bars;

    /// <inheritdoc/>
    public override int MsixVectors => _vectors;

    /// <inheritdoc/>
    public override uint MsixTableOffset => TableOffset;

    /// <inheritdoc/>
    public override uint MsixPbaOffset => PbaOffset;

    /// <inheritdoc/>
    public override int HostVectorLimit => _hostVectorLimit;

    /// <inheritdoc/>
    public override bool IsPciExpress => true;

    /// <inheritdoc/>
    public override bool SupportsFunctionReset => true;

    /// <inheritdoc/>
    protected override ulong ReadBar(int bar, ulong offset, int width)
    {
        if (width != 4)
        {
            return width == 8 ? ulong.MaxValue : (1UL << (8 * width)) - 1;
        }
        return offset switch
        {
            0x00 => Identification,
            0x04 => _scratch,
            _ => 0,
        };
    }

    /// <inheritdoc/>
    protected override void WriteBar(int bar, ulong offset, int width, ulong value)
    {
        if (width != 4)
        {
            return;
        }
        switch (offset)
        {
            case 0x04:
                _scratch = (uint)value;
                break;
            case 0x08:
                NotifyMsix((int)value);
                break;
            case 0x0c:
                SetIntx(value != 0);
                break;
            default:
                break;
        }
    }

    /// <inheritdoc/>
    protected override void OnReset()
    {
        _scratch = 0;
        SetIntx(false);
    }
}
