// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core;

/// <summary>One capability of a VFIO info structure's capability chain (<c>struct vfio_info_cap_header</c> and what
/// follows it).</summary>
/// <remarks>
/// The kernel gives no length per capability: <see cref="Bytes"/> runs from the header to the next capability (or to
/// the end of the info buffer for the last one), so it may include the kernel's padding to a multiple of 8 bytes.
/// Typed views (sparse mmap areas, region type, ...) are decoded from it with the uAPI struct offsets.
/// </remarks>
public sealed class VfioCapability
{
    internal VfioCapability(ushort id, ushort version, int offset, byte[] bytes)
    {
        Id = id;
        Version = version;
        Offset = offset;
        Bytes = bytes;
    }

    /// <summary>The capability id; its meaning depends on the info ioctl (<c>VFIO_REGION_INFO_CAP_*</c>,
    /// <c>VFIO_DEVICE_INFO_CAP_*</c>).</summary>
    public ushort Id { get; }

    /// <summary>The version of the capability's layout.</summary>
    public ushort Version { get; }

    /// <summary>The capability's byte offset from the start of the info structure.</summary>
    public int Offset { get; }

    /// <summary>The capability's bytes, header included (the header's <c>next</c> field is as the kernel wrote it).</summary>
    public ReadOnlyMemory<byte> Bytes { get; }

    /// <inheritdoc/>
    public override string ToString() => $"capability {Id} v{Version} at 0x{Offset:X} ({Bytes.Length} bytes)";
}

/// <summary>
/// Parses the capability chain that <c>VFIO_DEVICE_GET_INFO</c>, <c>VFIO_DEVICE_GET_REGION_INFO</c> and
/// <c>VFIO_IOMMU_GET_INFO</c> append to their fixed structure (the kernel's vfio_info_cap_add), without trusting it.
/// </summary>
/// <remarks>
/// Every header and payload is bounds-checked against the buffer. The kernel appends capabilities in order, so each
/// <c>next</c> pointer must point strictly forward, past the current header: a pointer that goes backwards, to
/// itself, into the fixed structure or beyond the buffer is rejected, which also makes a loop impossible. At most
/// <see cref="MaxCapabilities"/> entries are accepted. A malformed chain is a <see cref="VfioException"/> naming the
/// operation, the object and the offending offset.
/// </remarks>
public static class VfioCapabilityChain
{
    /// <summary>The most capabilities one chain may hold (the kernel emits at most a handful).</summary>
    public const int MaxCapabilities = 64;

    /// <summary>The size of <c>struct vfio_info_cap_header</c>.</summary>
    public const int HeaderSize = 8;

    /// <summary>Parses the chain that starts at <paramref name="firstOffset"/> in <paramref name="info"/>.</summary>
    /// <param name="info">The whole info buffer as the kernel filled it (fixed structure + capabilities), no longer
    /// than the <c>argsz</c> given to the kernel.</param>
    /// <param name="fixedSize">The size of the fixed structure (24 for device info, 32 for region info); no capability
    /// may start inside it.</param>
    /// <param name="firstOffset">The structure's <c>cap_offset</c>; 0 means no chain.</param>
    /// <param name="operation">The ioctl, for error messages (e.g. <c>VFIO_DEVICE_GET_REGION_INFO</c>).</param>
    /// <param name="objectName">What the info describes, for error messages (e.g. <c>0000:00:02.0 region 0</c>).</param>
    /// <returns>The capabilities in chain order; empty when <paramref name="firstOffset"/> is 0.</returns>
    /// <exception cref="VfioException">The chain is malformed.</exception>
    public static IReadOnlyList<VfioCapability> Parse(ReadOnlySpan<byte> info, int fixedSize, uint firstOffset, string operation, string objectName)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fixedSize);
        ArgumentException.ThrowIfNullOrEmpty(operation);
        if (firstOffset == 0)
        {
            return [];
        }
        var capabilities = new List<VfioCapability>();
        ulong offset = firstOffset;
        ulong length = (ulong)info.Length;
        if (offset < (ulong)fixedSize)
        {
            throw Malformed(operation, objectName, $"the first capability at 0x{offset:X} lies inside the {fixedSize}-byte fixed structure");
        }
        while (true)
        {
            if (capabilities.Count == MaxCapabilities)
            {
                throw Malformed(operation, objectName, $"more than {MaxCapabilities} capabilities (the {MaxCapabilities + 1}th at 0x{offset:X})");
            }
            if (offset > length || length - offset < HeaderSize)
            {
                throw Malformed(operation, objectName, $"the capability header at 0x{offset:X} extends beyond the 0x{length:X}-byte buffer");
            }
            ReadOnlySpan<byte> header = info.Slice((int)offset, HeaderSize);
            // The kernel writes host-endian structures.
            ushort id = MemoryMarshal.Read<ushort>(header);
            ushort version = MemoryMarshal.Read<ushort>(header[2..]);
            uint next = MemoryMarshal.Read<uint>(header[4..]);
            ulong end;
            if (next == 0)
            {
                end = length;
            }
            else if (next < offset + HeaderSize)
            {
                throw Malformed(operation, objectName, $"the capability {id} at 0x{offset:X} has next pointer 0x{next:X}, which goes backwards (a loop or an overlap)");
            }
            else if (next > length)
            {
                throw Malformed(operation, objectName, $"the capability {id} at 0x{offset:X} has next pointer 0x{next:X}, beyond the 0x{length:X}-byte buffer");
            }
            else
            {
                end = next;
            }
            capabilities.Add(new VfioCapability(id, version, (int)offset, info[(int)offset..(int)end].ToArray()));
            if (next == 0)
            {
                return capabilities;
            }
            offset = next;
        }
    }

    /// <summary>Finds the first capability with <paramref name="id"/>.</summary>
    /// <param name="capabilities">A parsed chain.</param>
    /// <param name="id">The capability id.</param>
    /// <returns>The capability, or null.</returns>
    public static VfioCapability? Find(IReadOnlyList<VfioCapability> capabilities, ushort id)
    {
        ArgumentNullException.ThrowIfNull(capabilities);
        for (int i = 0; i < capabilities.Count; i++)
        {
            if (capabilities[i].Id == id)
            {
                return capabilities[i];
            }
        }
        return null;
    }

    /// <summary>Checks that <paramref name="capability"/> holds at least <paramref name="size"/> bytes.</summary>
    internal static ReadOnlySpan<byte> Require(VfioCapability capability, ulong size, string what, string operation, string objectName)
    {
        if ((ulong)capability.Bytes.Length < size)
        {
            throw Malformed(operation, objectName, $"the {what} capability at 0x{capability.Offset:X} needs {size} bytes but only {capability.Bytes.Length} are available");
        }
        return capability.Bytes.Span;
    }

    /// <summary>Reads a host-endian <c>__u32</c> (the kernel's structures are host-endian).</summary>
    internal static uint ReadUInt32(ReadOnlySpan<byte> bytes, int offset) => MemoryMarshal.Read<uint>(bytes[offset..]);

    /// <summary>Reads a host-endian <c>__u64</c>.</summary>
    internal static ulong ReadUInt64(ReadOnlySpan<byte> bytes, int offset) => MemoryMarshal.Read<ulong>(bytes[offset..]);

    internal static VfioException Malformed(string operation, string objectName, string detail)
        => new(operation, objectName, $"malformed capability chain: {detail}");
}
