// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Pci;

/// <summary>An MSI message a guest programmed: the address the device writes to and the data it writes.</summary>
/// <param name="Address">The message address (64-bit when the capability is).</param>
/// <param name="Data">The message data, with the vector number in its low bits for multiple-message MSI.</param>
public readonly record struct PciMsiMessage(ulong Address, uint Data);
