// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Pci;

/// <summary>The bits of the PCI command register (<c>PCI_COMMAND</c>, offset 0x04, 16 bits).</summary>
[Flags]
public enum PciCommand : ushort
{
    /// <summary>No bit.</summary>
    None = 0,

    /// <summary>The device answers I/O-space accesses (<c>PCI_COMMAND_IO</c>).</summary>
    IoSpace = 0x0001,

    /// <summary>The device answers memory-space accesses, i.e. its memory BARs (<c>PCI_COMMAND_MEMORY</c>).</summary>
    MemorySpace = 0x0002,

    /// <summary>The device may master the bus: DMA and MSI/MSI-X writes (<c>PCI_COMMAND_MASTER</c>).</summary>
    BusMaster = 0x0004,

    /// <summary>Special cycles (<c>PCI_COMMAND_SPECIAL</c>).</summary>
    SpecialCycles = 0x0008,

    /// <summary>Memory write and invalidate (<c>PCI_COMMAND_INVALIDATE</c>).</summary>
    MemoryWriteInvalidate = 0x0010,

    /// <summary>VGA palette snooping (<c>PCI_COMMAND_VGA_PALETTE</c>).</summary>
    VgaPaletteSnoop = 0x0020,

    /// <summary>Parity error response (<c>PCI_COMMAND_PARITY</c>).</summary>
    ParityErrorResponse = 0x0040,

    /// <summary>Address/data stepping (<c>PCI_COMMAND_WAIT</c>).</summary>
    Stepping = 0x0080,

    /// <summary>SERR# enable (<c>PCI_COMMAND_SERR</c>).</summary>
    Serr = 0x0100,

    /// <summary>Fast back-to-back writes (<c>PCI_COMMAND_FAST_BACK</c>).</summary>
    FastBackToBack = 0x0200,

    /// <summary>The legacy INTx line is disabled (<c>PCI_COMMAND_INTX_DISABLE</c>).</summary>
    InterruptDisable = 0x0400,
}

/// <summary>The bits of the PCI status register (<c>PCI_STATUS</c>, offset 0x06, 16 bits). The error bits are
/// write-one-to-clear.</summary>
[Flags]
public enum PciStatus : ushort
{
    /// <summary>No bit.</summary>
    None = 0,

    /// <summary>Immediate readiness (<c>PCI_STATUS_IMM_READY</c>).</summary>
    ImmediateReadiness = 0x0001,

    /// <summary>The INTx line is asserted (<c>PCI_STATUS_INTERRUPT</c>).</summary>
    Interrupt = 0x0008,

    /// <summary>The device has a capability list at <c>PCI_CAPABILITY_LIST</c> (<c>PCI_STATUS_CAP_LIST</c>).</summary>
    CapabilitiesList = 0x0010,

    /// <summary>66 MHz capable (<c>PCI_STATUS_66MHZ</c>).</summary>
    Capable66MHz = 0x0020,

    /// <summary>Fast back-to-back capable (<c>PCI_STATUS_FAST_BACK</c>).</summary>
    FastBackToBack = 0x0080,

    /// <summary>Master data parity error (<c>PCI_STATUS_PARITY</c>).</summary>
    MasterDataParityError = 0x0100,

    /// <summary>Signaled target abort (<c>PCI_STATUS_SIG_TARGET_ABORT</c>).</summary>
    SignaledTargetAbort = 0x0800,

    /// <summary>Received target abort (<c>PCI_STATUS_REC_TARGET_ABORT</c>).</summary>
    ReceivedTargetAbort = 0x1000,

    /// <summary>Received master abort (<c>PCI_STATUS_REC_MASTER_ABORT</c>).</summary>
    ReceivedMasterAbort = 0x2000,

    /// <summary>Signaled system error (<c>PCI_STATUS_SIG_SYSTEM_ERROR</c>).</summary>
    SignaledSystemError = 0x4000,

    /// <summary>Detected parity error (<c>PCI_STATUS_DETECTED_PARITY</c>).</summary>
    DetectedParityError = 0x8000,
}
