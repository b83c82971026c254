// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;

namespace Vfio.Core.Tests.Devices;

/// <summary>
/// A device fd's side of the kernel port, answering GET_INFO / GET_REGION_INFO / GET_IRQ_INFO / SET_IRQS / RESET /
/// FEATURE from canned data the way Linux 6.12 does (argsz protocol of include/uapi/linux/vfio.h, vfio_info_cap_add), recording what it was sent.
/// Nothing on the SET_IRQS, pread and pwrite paths allocates, so allocation tests can run through it.
/// </summary>
internal sealed class FakeDeviceKernel : IKernel
{
    private const int RegionInfoSize = 32;
    private const int DeviceInfoSize = 24;

    public uint DeviceFlags { get; set; } = VfioUapi.VFIO_DEVICE_FLAGS_PCI;
    public uint NumRegions { get; set; } = 9;
    public uint NumIrqs { get; set; } = 5;
    public int DeviceInfoErrno { get; set; }

    /// <summary>Device-info capability bytes placed at offset 24 (their next pointers are absolute).</summary>
    public byte[]? DeviceCaps { get; set; }

    public Dictionary<uint, FakeRegion> Regions { get; } = [];
    public Dictionary<uint, (uint Flags, uint Count)> Irqs { get; } = [];

    /// <summary>argsz of every GET_INFO / GET_REGION_INFO call, in order.</summary>
    public List<uint> InfoArgsz { get; } = [];
    public int RegionInfoCalls { get; private set; }

    /// <summary>The bytes of the last SET_IRQS (preallocated: recording does not allocate).</summary>
    public byte[] LastSetIrqs { get; } = new byte[4096];
    public int LastSetIrqsLength { get; private set; }
    public int SetIrqsCalls { get; private set; }
    public int SetIrqsResult { get; set; }

    public int ResetCalls { get; private set; }
    public int ResetResult { get; set; }

    public byte[] LastFeature { get; private set; } = [];
    public int FeatureResult { get; set; }
    /// <summary>Bytes the "kernel" writes into the feature payload on success.</summary>
    public byte[]? FeatureReply { get; set; }

    public int PReadCalls { get; private set; }
    public long LastAccessOffset { get; private set; }
    /// <summary>When set, pread/pwrite transfer this many bytes fewer than asked.</summary>
    public int ShortBy { get; set; }
    public int AccessErrno { get; set; }

    public List<(long Offset, ulong Length, MemoryProtection Protection)> Maps { get; } = [];
    public List<FakeMapping> Mappings { get; } = [];
    /// <summary>Map calls fail with this errno from the n-th call on (1-based); 0 = never.</summary>
    public int MapFailsFromCall { get; set; }
    public int MapErrno { get; set; } = (int)Errno.EINVAL;

    public static SafeFileHandle OpenDeviceFd() => File.OpenHandle("/dev/null", FileMode.Open, FileAccess.ReadWrite);

    public int Ioctl(SafeHandle fd, uint request, Span<byte> argument)
    {
        if (request == VfioUapi.VFIO_DEVICE_GET_INFO)
        {
            return GetInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_GET_REGION_INFO)
        {
            return GetRegionInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_GET_IRQ_INFO)
        {
            ref vfio_irq_info info = ref MemoryMarshal.AsRef<vfio_irq_info>(argument);
            if (info.argsz < 16 || !Irqs.TryGetValue(info.index, out (uint Flags, uint Count) irq))
            {
                return -(int)Errno.EINVAL;
            }
            info.flags = irq.Flags;
            info.count = irq.Count;
            return 0;
        }
        if (request == VfioUapi.VFIO_DEVICE_SET_IRQS)
        {
            SetIrqsCalls++;
            argument.CopyTo(LastSetIrqs);
            LastSetIrqsLength = argument.Length;
            return SetIrqsResult;
        }
        if (request == VfioUapi.VFIO_DEVICE_FEATURE)
        {
            LastFeature = argument.ToArray();
            if (FeatureResult == 0 && FeatureReply is not null)
            {
                FeatureReply.CopyTo(argument[8..]);
            }
            return FeatureResult;
        }
        return -(int)Errno.ENOTTY;
    }

    public int Ioctl(SafeHandle fd, uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_DEVICE_RESET)
        {
            ResetCalls++;
            return ResetResult;
        }
        return -(int)Errno.ENOTTY;
    }

    public unsafe int Ioctl(SafeHandle fd, uint request, void* argument) => throw new NotSupportedException("VfioDevice must use the span overload.");

    private int GetInfo(Span<byte> argument)
    {
        ref vfio_device_info info = ref MemoryMarshal.AsRef<vfio_device_info>(argument);
        InfoArgsz.Add(info.argsz);
        if (DeviceInfoErrno != 0)
        {
            return -DeviceInfoErrno;
        }
        if (info.argsz < 16)
        {
            return -(int)Errno.EINVAL;
        }
        info.flags = DeviceFlags;
        info.num_regions = NumRegions;
        info.num_irqs = NumIrqs;
        if (DeviceCaps is { } caps)
        {
            info.flags |= VfioUapi.VFIO_DEVICE_FLAGS_CAPS;
            uint needed = (uint)(DeviceInfoSize + caps.Length);
            if (info.argsz < needed)
            {
                info.argsz = needed;
                info.cap_offset = 0;
            }
            else
            {
                caps.CopyTo(argument[DeviceInfoSize..]);
                info.cap_offset = DeviceInfoSize;
            }
        }
        return 0;
    }

    private int GetRegionInfo(Span<byte> argument)
    {
        RegionInfoCalls++;
        ref vfio_region_info info = ref MemoryMarshal.AsRef<vfio_region_info>(argument);
        InfoArgsz.Add(info.argsz);
        if (info.argsz < RegionInfoSize || !Regions.TryGetValue(info.index, out FakeRegion? region))
        {
            return -(int)Errno.EINVAL;
        }
        info.flags = region.Flags;
        info.size = region.Size;
        info.offset = region.Offset ?? ((ulong)info.index << 40);
        info.cap_offset = 0;
        if (region.Caps is { } caps)
        {
            info.flags |= VfioUapi.VFIO_REGION_INFO_FLAG_CAPS;
            uint needed = region.KeepGrowing ? info.argsz + 8 : region.RequiredArgsz ?? (uint)(RegionInfoSize + caps.Length);
            if (info.argsz < needed)
            {
                info.argsz = needed;
            }
            else
            {
                caps.AsSpan(0, Math.Min(caps.Length, argument.Length - RegionInfoSize)).CopyTo(argument[RegionInfoSize..]);
                info.cap_offset = region.CapOffset ?? RegionInfoSize;
            }
        }
        return 0;
    }

    public long PRead(SafeHandle fd, Span<byte> buffer, long offset)
    {
        PReadCalls++;
        LastAccessOffset = offset;
        if (AccessErrno != 0)
        {
            return -AccessErrno;
        }
        byte[] store = Backing(offset, out int local);
        int n = buffer.Length - ShortBy;
        store.AsSpan(local, n).CopyTo(buffer);
        return n;
    }

    public long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset)
    {
        LastAccessOffset = offset;
        if (AccessErrno != 0)
        {
            return -AccessErrno;
        }
        byte[] store = Backing(offset, out int local);
        int n = buffer.Length - ShortBy;
        buffer[..n].CopyTo(store.AsSpan(local));
        return n;
    }

    private byte[] Backing(long offset, out int local)
    {
        FakeRegion region = Regions[(uint)(offset >> 40)];
        local = (int)(offset & ((1L << 40) - 1));
        return region.Memory;
    }

    public int Map(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping)
    {
        MapAlignments.Add(0);
        return MapCore(fd, offset, length, protection, out mapping);
    }

    private int MapCore(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping)
    {
        _ = fd;
        Maps.Add((offset, length, protection));
        if (MapFailsFromCall != 0 && Maps.Count >= MapFailsFromCall)
        {
            mapping = null;
            return -MapErrno;
        }
        var fake = new FakeMapping(length, offset);
        Mappings.Add(fake);
        mapping = fake;
        return 0;
    }

    /// <summary>The alignment of each map call, in order (0: placed where the kernel chooses).</summary>
    public List<ulong> MapAlignments { get; } = [];

    public int MapAligned(SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        MapAlignments.Add(alignment);
        return MapCore(fd, offset, length, protection, out mapping);
    }

    public int Open(string path, OpenFlags flags, out SafeFileHandle handle) => throw new NotSupportedException();

    public int MapAnonymous(ulong length, out MemoryMapping? mapping) => throw new NotSupportedException();

    public int LockMemory(MemoryMapping mapping) => throw new NotSupportedException();

    public int GetStatus(SafeHandle fd, out FileStatus status) => throw new NotSupportedException();

    public int ReadLink(string path, out string target) => throw new NotSupportedException();

    public int ReadText(string path, out string text) => throw new NotSupportedException();

    public int ListDirectory(string path, out string[] entries) => throw new NotSupportedException();

    public bool Exists(string path) => throw new NotSupportedException();
}

/// <summary>A region of the fake device: canned info and a backing store for pread/pwrite.</summary>
internal sealed class FakeRegion
{
    public uint Flags { get; set; } = VfioUapi.VFIO_REGION_INFO_FLAG_READ | VfioUapi.VFIO_REGION_INFO_FLAG_WRITE;
    public ulong Size { get; set; } = 0x1000;
    /// <summary>The file offset; default index &lt;&lt; 40.</summary>
    public ulong? Offset { get; set; }
    /// <summary>Capability bytes placed at offset 32 of the info (next pointers absolute).</summary>
    public byte[]? Caps { get; set; }
    /// <summary>Overrides the cap_offset reported (for malformed-chain tests).</summary>
    public uint? CapOffset { get; set; }
    /// <summary>Overrides the argsz the kernel asks for (e.g. one that keeps growing).</summary>
    public uint? RequiredArgsz { get; set; }
    /// <summary>Asks for 8 more bytes than given, every time.</summary>
    public bool KeepGrowing { get; set; }
    public byte[] Memory { get; set; } = new byte[0x1000];
}

/// <summary>A mapping over zeroed native memory (stands in for a device BAR).</summary>
internal sealed unsafe class FakeMapping : MemoryMapping
{
    public FakeMapping(ulong length, long fileOffset)
    {
        SetMapping((nint)NativeMemory.AllocZeroed((nuint)length), length, fileOffset);
    }

    /// <summary>True once the memory was freed (the SafeHandle's last reference went).</summary>
    public bool Released { get; private set; }

    protected override bool ReleaseMapping()
    {
        NativeMemory.Free((void*)handle);
        Released = true;
        return true;
    }
}

/// <summary>Builds capability-chain bytes as the kernel lays them out (host-endian, 8-byte padded).</summary>
internal sealed class CapBuilder(int baseOffset)
{
    private readonly List<byte> _bytes = [];
    private int _lastHeader = -1;

    /// <summary>Appends a capability (header + payload), chaining the previous one to it.</summary>
    public CapBuilder Add(ushort id, ushort version, ReadOnlySpan<byte> payload)
    {
        int at = _bytes.Count;
        if (_lastHeader >= 0)
        {
            SetNext(_lastHeader, (uint)(baseOffset + at));
        }
        _lastHeader = at;
        Span<byte> header = stackalloc byte[8];
        MemoryMarshal.Write(header, new vfio_info_cap_header { id = id, version = version, next = 0 });
        _bytes.AddRange(header);
        _bytes.AddRange(payload);
        while (_bytes.Count % 8 != 0)
        {
            _bytes.Add(0);
        }
        return this;
    }

    public CapBuilder Sparse(params (ulong Offset, ulong Size)[] areas)
    {
        var payload = new byte[8 + (16 * areas.Length)];
        BitConverter.TryWriteBytes(payload.AsSpan(0), (uint)areas.Length);
        for (int i = 0; i < areas.Length; i++)
        {
            BitConverter.TryWriteBytes(payload.AsSpan(8 + (16 * i)), areas[i].Offset);
            BitConverter.TryWriteBytes(payload.AsSpan(16 + (16 * i)), areas[i].Size);
        }
        return Add(VfioUapi.VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, payload);
    }

    public CapBuilder Type(uint type, uint subtype)
    {
        var payload = new byte[8];
        BitConverter.TryWriteBytes(payload.AsSpan(0), type);
        BitConverter.TryWriteBytes(payload.AsSpan(4), subtype);
        return Add(VfioUapi.VFIO_REGION_INFO_CAP_TYPE, 1, payload);
    }

    public CapBuilder MsixMappable() => Add(VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, []);

    /// <summary>Rewrites the next pointer of the capability at relative position <paramref name="at"/>.</summary>
    public CapBuilder SetNext(int at, uint next)
    {
        byte[] value = BitConverter.GetBytes(next);
        for (int i = 0; i < 4; i++)
        {
            _bytes[at + 4 + i] = value[i];
        }
        return this;
    }

    public byte[] Build() => [.. _bytes];
}
