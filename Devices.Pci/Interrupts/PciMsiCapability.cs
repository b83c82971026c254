// SPDX-License-Identifier: MIT
namespace Vfio.Devices.Pci;

/// <summary>
/// An MSI capability (PCI capability id 0x05) as decoded from its message control word: how many vectors the device
/// can send (Multiple Message Capable), whether its address is 64-bit, whether it has per-vector mask bits, and where
/// each register is.
/// </summary>
/// <param name="Offset">The capability's offset in config space.</param>
/// <param name="Control">The message control word (offset + 2).</param>
public readonly record struct PciMsiCapability(int Offset, ushort Control)
{
    /// <summary>Message control bit 0: MSI Enable.</summary>
    public const ushort EnableBit = 0x0001;

    /// <summary>Message control bits 6:4: Multiple Message Enable (log2 of the vectors enabled).</summary>
    public const ushort MultipleMessageEnableMask = 0x0070;

    /// <summary>The most vectors the device can send: 2^(Multiple Message Capable), 1 to 32 (a reserved encoding above
    /// 5 counts as 32).</summary>
    public int MaxVectors => 1 << Math.Min((Control >> 1) & 7, 5);

    /// <summary>Whether MSI is enabled in the control word.</summary>
    public bool IsEnabled => (Control & EnableBit) != 0;

    /// <summary>The vectors enabled in the control word (2^(Multiple Message Enable)).</summary>
    public int EnabledVectors => 1 << Math.Min((Control >> 4) & 7, 5);

    /// <summary>Whether the message address is 64-bit.</summary>
    public bool Is64Bit => (Control & 0x0080) != 0;

    /// <summary>Whether the capability has per-vector mask and pending bits.</summary>
    public bool HasPerVectorMasking => (Control & 0x0100) != 0;

    /// <summary>The capability's length in bytes: 10, plus 4 for a 64-bit address, plus 10 for the mask and pending
    /// bits.</summary>
    public int Length => 10 + (Is64Bit ? 4 : 0) + (HasPerVectorMasking ? 10 : 0);

    /// <summary>The offset of the message data register.</summary>
    public int DataOffset => Offset + (Is64Bit ? 12 : 8);

    /// <summary>The offset of the mask bits register, or -1 without per-vector masking.</summary>
    public int MaskOffset => HasPerVectorMasking ? Offset + (Is64Bit ? 16 : 12) : -1;

    /// <inheritdoc/>
    public override string ToString()
        => $"MSI at 0x{Offset:x2}: {MaxVectors} vector(s), {(Is64Bit ? "64" : "32")}-bit{(HasPerVectorMasking ? ", per-vector mask" : "")}{(IsEnabled ? ", enabled" : "")}";
}
