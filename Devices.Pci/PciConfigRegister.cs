// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Pci;

/// <summary>The offsets of the registers of a type-0 PCI configuration header (<c>PCI_*</c> of
/// <c>linux/pci_regs.h</c>), for <see cref="VfioPciDevice.ReadConfig16(int)"/> and the other config accessors.</summary>
public static class PciConfigRegister
{
    /// <summary>Vendor ID, 16 bits.</summary>
    public const int VendorId = 0x00;

    /// <summary>Device ID, 16 bits.</summary>
    public const int DeviceId = 0x02;

    /// <summary>Command register, 16 bits (<see cref="PciCommand"/>).</summary>
    public const int Command = 0x04;

    /// <summary>Status register, 16 bits (<see cref="PciStatus"/>).</summary>
    public const int Status = 0x06;

    /// <summary>Revision ID, 8 bits.</summary>
    public const int RevisionId = 0x08;

    /// <summary>Class code (programming interface, subclass, base class), 24 bits from 0x09.</summary>
    public const int ClassCode = 0x09;

    /// <summary>Cache line size, 8 bits.</summary>
    public const int CacheLineSize = 0x0C;

    /// <summary>Latency timer, 8 bits.</summary>
    public const int LatencyTimer = 0x0D;

    /// <summary>Header type, 8 bits (bit 7: multi-function).</summary>
    public const int HeaderType = 0x0E;

    /// <summary>BIST, 8 bits.</summary>
    public const int Bist = 0x0F;

    /// <summary>Base address register 0, 32 bits; BAR n is at <c>Bar0 + 4 * n</c>.</summary>
    public const int Bar0 = 0x10;

    /// <summary>CardBus CIS pointer, 32 bits.</summary>
    public const int CardbusCis = 0x28;

    /// <summary>Subsystem vendor ID, 16 bits.</summary>
    public const int SubsystemVendorId = 0x2C;

    /// <summary>Subsystem ID, 16 bits.</summary>
    public const int SubsystemId = 0x2E;

    /// <summary>Expansion ROM base address, 32 bits.</summary>
    public const int RomAddress = 0x30;

    /// <summary>Capabilities pointer, 8 bits (valid when <see cref="PciStatus.CapabilitiesList"/> is set).</summary>
    public const int CapabilitiesPointer = 0x34;

    /// <summary>Interrupt line, 8 bits.</summary>
    public const int InterruptLine = 0x3C;

    /// <summary>Interrupt pin, 8 bits (0: none, 1–4: INTA#–INTD#).</summary>
    public const int InterruptPin = 0x3D;

    /// <summary>The size of the standard configuration space (header and capability list).</summary>
    public const int StandardSize = 0x100;

    /// <summary>The size of the PCI Express extended configuration space; the extended list starts at
    /// <see cref="StandardSize"/>.</summary>
    public const int ExtendedSize = 0x1000;
}
