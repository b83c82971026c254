// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Pci;

/// <summary>The ids of the standard PCI capabilities (<c>PCI_CAP_ID_*</c> of <c>linux/pci_regs.h</c>). An id the
/// enum does not name is still reported, as its number.</summary>
public enum PciCapabilityId : byte
{
    /// <summary>Power management (<c>PCI_CAP_ID_PM</c>).</summary>
    PowerManagement = 0x01,

    /// <summary>AGP (<c>PCI_CAP_ID_AGP</c>).</summary>
    Agp = 0x02,

    /// <summary>Vital product data (<c>PCI_CAP_ID_VPD</c>).</summary>
    VitalProductData = 0x03,

    /// <summary>Slot identification (<c>PCI_CAP_ID_SLOTID</c>).</summary>
    SlotId = 0x04,

    /// <summary>MSI (<c>PCI_CAP_ID_MSI</c>).</summary>
    Msi = 0x05,

    /// <summary>CompactPCI hot swap (<c>PCI_CAP_ID_CHSWP</c>).</summary>
    CompactPciHotSwap = 0x06,

    /// <summary>PCI-X (<c>PCI_CAP_ID_PCIX</c>).</summary>
    PciX = 0x07,

    /// <summary>HyperTransport (<c>PCI_CAP_ID_HT</c>).</summary>
    HyperTransport = 0x08,

    /// <summary>Vendor-specific (<c>PCI_CAP_ID_VNDR</c>); its length is the byte at offset 2.</summary>
    VendorSpecific = 0x09,

    /// <summary>Debug port (<c>PCI_CAP_ID_DBG</c>).</summary>
    DebugPort = 0x0A,

    /// <summary>CompactPCI central resource control (<c>PCI_CAP_ID_CCRC</c>).</summary>
    CompactPciResourceControl = 0x0B,

    /// <summary>PCI standard hot-plug controller (<c>PCI_CAP_ID_SHPC</c>).</summary>
    HotPlugController = 0x0C,

    /// <summary>Bridge subsystem vendor/device id (<c>PCI_CAP_ID_SSVID</c>).</summary>
    BridgeSubsystemId = 0x0D,

    /// <summary>AGP target PCI-PCI bridge (<c>PCI_CAP_ID_AGP3</c>).</summary>
    Agp3 = 0x0E,

    /// <summary>Secure device (<c>PCI_CAP_ID_SECDEV</c>).</summary>
    SecureDevice = 0x0F,

    /// <summary>PCI Express (<c>PCI_CAP_ID_EXP</c>): a device with it has the extended configuration space.</summary>
    PciExpress = 0x10,

    /// <summary>MSI-X (<c>PCI_CAP_ID_MSIX</c>).</summary>
    MsiX = 0x11,

    /// <summary>SATA data/index configuration (<c>PCI_CAP_ID_SATA</c>).</summary>
    Sata = 0x12,

    /// <summary>PCI advanced features, e.g. function-level reset of a conventional device (<c>PCI_CAP_ID_AF</c>).</summary>
    AdvancedFeatures = 0x13,

    /// <summary>Enhanced allocation (<c>PCI_CAP_ID_EA</c>).</summary>
    EnhancedAllocation = 0x14,
}

/// <summary>The ids of the PCI Express extended capabilities (<c>PCI_EXT_CAP_ID_*</c> of <c>linux/pci_regs.h</c>).
/// An id the enum does not name is still reported, as its number.</summary>
public enum PciExtendedCapabilityId : ushort
{
    /// <summary>Advanced error reporting (<c>PCI_EXT_CAP_ID_ERR</c>).</summary>
    AdvancedErrorReporting = 0x0001,

    /// <summary>Virtual channel (<c>PCI_EXT_CAP_ID_VC</c>).</summary>
    VirtualChannel = 0x0002,

    /// <summary>Device serial number (<c>PCI_EXT_CAP_ID_DSN</c>).</summary>
    DeviceSerialNumber = 0x0003,

    /// <summary>Power budgeting (<c>PCI_EXT_CAP_ID_PWR</c>).</summary>
    PowerBudgeting = 0x0004,

    /// <summary>Root complex link declaration (<c>PCI_EXT_CAP_ID_RCLD</c>).</summary>
    RootComplexLinkDeclaration = 0x0005,

    /// <summary>Root complex internal link control (<c>PCI_EXT_CAP_ID_RCILC</c>).</summary>
    RootComplexInternalLinkControl = 0x0006,

    /// <summary>Root complex event collector endpoint association (<c>PCI_EXT_CAP_ID_RCEC</c>).</summary>
    RootComplexEventCollector = 0x0007,

    /// <summary>Multi-function virtual channel (<c>PCI_EXT_CAP_ID_MFVC</c>).</summary>
    MultiFunctionVirtualChannel = 0x0008,

    /// <summary>Virtual channel, second id (<c>PCI_EXT_CAP_ID_VC9</c>).</summary>
    VirtualChannel9 = 0x0009,

    /// <summary>Root complex register block (<c>PCI_EXT_CAP_ID_RCRB</c>).</summary>
    RootComplexRegisterBlock = 0x000A,

    /// <summary>Vendor-specific (<c>PCI_EXT_CAP_ID_VNDR</c>).</summary>
    VendorSpecific = 0x000B,

    /// <summary>Configuration access correlation (<c>PCI_EXT_CAP_ID_CAC</c>).</summary>
    ConfigAccessCorrelation = 0x000C,

    /// <summary>Access control services (<c>PCI_EXT_CAP_ID_ACS</c>).</summary>
    AccessControlServices = 0x000D,

    /// <summary>Alternative routing-id interpretation (<c>PCI_EXT_CAP_ID_ARI</c>).</summary>
    AlternativeRoutingId = 0x000E,

    /// <summary>Address translation services (<c>PCI_EXT_CAP_ID_ATS</c>).</summary>
    AddressTranslationServices = 0x000F,

    /// <summary>Single-root I/O virtualization (<c>PCI_EXT_CAP_ID_SRIOV</c>).</summary>
    SingleRootIoVirtualization = 0x0010,

    /// <summary>Multi-root I/O virtualization (<c>PCI_EXT_CAP_ID_MRIOV</c>).</summary>
    MultiRootIoVirtualization = 0x0011,

    /// <summary>Multicast (<c>PCI_EXT_CAP_ID_MCAST</c>).</summary>
    Multicast = 0x0012,

    /// <summary>Page request interface (<c>PCI_EXT_CAP_ID_PRI</c>).</summary>
    PageRequest = 0x0013,

    /// <summary>Resizable BAR (<c>PCI_EXT_CAP_ID_REBAR</c>).</summary>
    ResizableBar = 0x0015,

    /// <summary>Dynamic power allocation (<c>PCI_EXT_CAP_ID_DPA</c>).</summary>
    DynamicPowerAllocation = 0x0016,

    /// <summary>TPH requester (<c>PCI_EXT_CAP_ID_TPH</c>).</summary>
    TphRequester = 0x0017,

    /// <summary>Latency tolerance reporting (<c>PCI_EXT_CAP_ID_LTR</c>).</summary>
    LatencyToleranceReporting = 0x0018,

    /// <summary>Secondary PCI Express (<c>PCI_EXT_CAP_ID_SECPCI</c>).</summary>
    SecondaryPciExpress = 0x0019,

    /// <summary>Protocol multiplexing (<c>PCI_EXT_CAP_ID_PMUX</c>).</summary>
    ProtocolMultiplexing = 0x001A,

    /// <summary>Process address space id (<c>PCI_EXT_CAP_ID_PASID</c>).</summary>
    ProcessAddressSpaceId = 0x001B,

    /// <summary>LN requester (<c>PCI_EXT_CAP_ID_LNR</c>).</summary>
    LnRequester = 0x001C,

    /// <summary>Downstream port containment (<c>PCI_EXT_CAP_ID_DPC</c>).</summary>
    DownstreamPortContainment = 0x001D,

    /// <summary>L1 PM substates (<c>PCI_EXT_CAP_ID_L1SS</c>).</summary>
    L1PmSubstates = 0x001E,

    /// <summary>Precision time measurement (<c>PCI_EXT_CAP_ID_PTM</c>).</summary>
    PrecisionTimeMeasurement = 0x001F,

    /// <summary>Designated vendor-specific (<c>PCI_EXT_CAP_ID_DVSEC</c>).</summary>
    DesignatedVendorSpecific = 0x0023,

    /// <summary>VF resizable BAR (<c>PCI_EXT_CAP_ID_VF_REBAR</c>).</summary>
    VfResizableBar = 0x0024,

    /// <summary>Data link feature (<c>PCI_EXT_CAP_ID_DLF</c>).</summary>
    DataLinkFeature = 0x0025,

    /// <summary>Physical layer 16.0 GT/s (<c>PCI_EXT_CAP_ID_PL_16GT</c>).</summary>
    PhysicalLayer16GT = 0x0026,

    /// <summary>Physical layer 32.0 GT/s (<c>PCI_EXT_CAP_ID_PL_32GT</c>).</summary>
    PhysicalLayer32GT = 0x002A,

    /// <summary>Data object exchange (<c>PCI_EXT_CAP_ID_DOE</c>).</summary>
    DataObjectExchange = 0x002E,
}
