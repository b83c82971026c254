// SPDX-License-Identifier: MIT
using System.Globalization;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core.Interop;
using Vfio.Tests.Shared;

namespace Vfio.Core.Tests.Devices;

/// <summary>
/// Property tests of the parsers of what VFIO's info ioctls return: device info (with its capability chain and PCI
/// atomic completer capability), region info (sparse mmap, type and MSI-X-mappable capabilities) and IRQ info. Each
/// runs 10,000 generated inputs, half valid (the parse must give back what was generated) and half corrupted (the parse
/// may only succeed with a consistent result or throw <see cref="VfioException"/>: any other exception, such as an
/// out-of-range read of the buffer, fails the property).
/// </summary>
[Trait("Tier", "host")]   // pure computation: under TCG in the guest it would cost minutes
public sealed class KernelBytesPropertyTests
{
    private const int RegionFixed = 32;
    private const int DeviceFixed = 24;

    private static readonly SafeFileHandle s_fd = FakeDeviceKernel.OpenDeviceFd();

    [Fact]
    public Task RegionInfo_GeneratedChains_RoundTripOrAreRefusedWithAVfioException() => Property.RunAsync("region info", 151_001, random =>
    {
        var kernel = new FakeDeviceKernel();
        ulong size = random.Next(4) == 0 ? random.NextULong() >> random.Next(64) : (ulong)random.Next(1, 1 << 20) << 12;
        ulong offset = random.Next(8) == 0 ? random.NextULong() : 7UL << 40;
        var builder = new CapBuilder(RegionFixed);
        (ulong Offset, ulong Size)[]? areas = null;
        (uint Type, uint Subtype)? type = null;
        bool msix = false;
        int caps = random.Next(5);
        for (int c = 0; c < caps; c++)
        {
            switch (random.Next(4))
            {
                case 0 when areas is null:
                    areas = new (ulong, ulong)[random.Next(0, 6)];
                    for (int a = 0; a < areas.Length; a++)
                    {
                        ulong areaOffset = size == 0 ? 0 : random.NextULong() % size;
                        ulong room = size - areaOffset;
                        areas[a] = (areaOffset, room == ulong.MaxValue ? random.NextULong() : random.NextULong() % (room + 1));
                    }
                    builder.Sparse(areas);
                    break;
                case 1 when type is null:
                    type = (random.NextUInt(), random.NextUInt());
                    builder.Type(type.Value.Type, type.Value.Subtype);
                    break;
                case 2 when !msix:
                    msix = true;
                    builder.MsixMappable();
                    break;
                default:
                    builder.Add((ushort)random.Next(100, 1000), (ushort)random.Next(4), new byte[random.Next(0, 5) * 8]);
                    break;
            }
        }
        byte[] chain = builder.Build();
        bool corrupt = random.Next(2) == 0 && chain.Length > 0;
        uint index = (uint)random.Next(9);
        kernel.Regions[index] = new FakeRegion
        {
            Flags = random.NextUInt() & ~VfioUapi.VFIO_REGION_INFO_FLAG_CAPS,
            Size = size,
            Offset = offset,
            Caps = chain.Length == 0 ? null : corrupt ? random.Corrupt(chain, RegionFixed) : chain,
            CapOffset = corrupt && random.Next(4) == 0 ? random.Interesting() : null,
        };
        bool plausible = offset <= long.MaxValue && size <= long.MaxValue - offset;
        using var device = new VfioDevice(kernel, s_fd, "generated", ownsHandle: false);
        VfioRegionInfo info;
        try
        {
            info = device.GetRegion((int)index);
        }
        catch (VfioException e)
        {
            (corrupt || !plausible).ShouldBeTrue($"a valid region info was refused: {e.Message}");
            e.Message.ShouldContain("generated region");
            return;
        }
        // Consistent with the input whatever it was: the size and offset as given, every sparse area inside the region.
        plausible.ShouldBeTrue("an implausible offset and size were accepted");
        info.Size.ShouldBe(size);
        info.Offset.ShouldBe(offset);
        foreach (VfioSparseMmapArea area in info.SparseMmapAreas ?? [])
        {
            area.Offset.ShouldBeLessThanOrEqualTo(size);
            area.Size.ShouldBeLessThanOrEqualTo(size - area.Offset);
        }
        if (!corrupt)
        {
            (info.SparseMmapAreas?.Select(a => (a.Offset, a.Size)).ToArray()).ShouldBe(areas);
            (info.Type is { } t ? (t.Type, t.Subtype) : ((uint, uint)?)null).ShouldBe(type);
            info.IsMsixMappable.ShouldBe(msix);
            info.Capabilities.Count.ShouldBe(caps);
        }
    });

    [Fact]
    public Task DeviceInfo_GeneratedChainsAndCounts_RoundTripOrAreRefusedWithAVfioException() => Property.RunAsync("device info", 151_002, random =>
    {
        var kernel = new FakeDeviceKernel { NumRegions = random.Interesting(), NumIrqs = random.Interesting(), DeviceFlags = random.NextUInt() & ~VfioUapi.VFIO_DEVICE_FLAGS_CAPS };
        var builder = new CapBuilder(DeviceFixed);
        uint? atomics = null;
        int caps = random.Next(4);
        for (int c = 0; c < caps; c++)
        {
            if (atomics is null && random.Next(2) == 0)
            {
                atomics = random.NextUInt();
                byte[] payload = new byte[8];
                BitConverter.TryWriteBytes(payload, atomics.Value);
                builder.Add(VfioUapi.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, 1, payload);
            }
            else
            {
                builder.Add((ushort)random.Next(100, 1000), 1, new byte[random.Next(0, 4) * 8]);
            }
        }
        byte[] chain = builder.Build();
        bool corrupt = random.Next(2) == 0 && chain.Length > 0;
        kernel.DeviceCaps = chain.Length == 0 ? null : corrupt ? random.Corrupt(chain, DeviceFixed) : chain;
        bool countsFit = kernel.NumRegions <= int.MaxValue && kernel.NumIrqs <= int.MaxValue;
        VfioDevice device;
        try
        {
            device = new VfioDevice(kernel, s_fd, "generated", ownsHandle: false);
        }
        catch (VfioException e)
        {
            (corrupt || !countsFit).ShouldBeTrue($"a valid device info was refused: {e.Message}");
            e.Message.ShouldContain("generated");
            return;
        }
        using (device)
        {
            countsFit.ShouldBeTrue("a count beyond int.MaxValue was accepted");
            device.Info.RegionCount.ShouldBe((int)kernel.NumRegions);
            device.Info.IrqCount.ShouldBe((int)kernel.NumIrqs);
            if (!corrupt)
            {
                device.Info.Capabilities.Count.ShouldBe(caps);
                ((uint?)device.Info.PciAtomicCompleter).ShouldBe(atomics);
            }
        }
    });

    [Fact]
    public Task IrqInfo_AnyFlagsAndCount_DecodeOrAreRefusedWithAVfioException() => Property.RunAsync("IRQ info", 151_003, random =>
    {
        var kernel = new FakeDeviceKernel { NumIrqs = 16 };
        uint index = (uint)random.Next(16);
        (uint flags, uint count) = (random.NextUInt(), random.Interesting());
        kernel.Irqs[index] = (flags, count);
        using var device = new VfioDevice(kernel, s_fd, "generated", ownsHandle: false);
        VfioIrqInfo info;
        try
        {
            info = device.GetIrq((int)index);
        }
        catch (VfioException e)
        {
            count.ShouldBeGreaterThan((uint)int.MaxValue, $"a plausible IRQ info was refused: {e.Message}");
            e.Message.ShouldContain("generated");
            return;
        }
        info.Index.ShouldBe((int)index);
        info.Count.ShouldBe((int)count);
        ((uint)info.Flags).ShouldBe(flags);
    });
}

/// <summary>
/// Property test of the sysfs text the library reads (<see cref="VfioSysfs"/> and the fd validator's classification):
/// generated <c>iommu_group</c> and <c>driver</c> links, <c>vendor</c>/<c>device</c>/<c>class</c> files, <c>vfio-dev</c>
/// directories and <c>/sys/dev/char</c> paths, valid and garbled. The readers never throw, give back what valid text
/// says, and give nothing (null) for text they cannot read.
/// </summary>
[Trait("Tier", "host")]   // pure computation: under TCG in the guest it would cost minutes
public sealed class SysfsTextPropertyTests
{
    private static readonly string[] s_garbage = ["", " ", "\n", "0x", "-1", "0x-1", "1 2", "+5", "0x1g", "ffffffffffffffffffff", "\0", "../", "/", "//", "..", "é", "0x 12"];

    [Fact]
    public Task DeviceListing_GeneratedSysfs_NeverThrows_AndReadsBackValidValues() => Property.RunAsync("sysfs", 151_004, random =>
    {
        var sysfs = new FakeSysfs();
        int count = random.Next(1, 4);
        var expected = new Dictionary<string, (int? Group, ushort? Vendor, ushort? Device, uint? Class, string? Driver)>();
        for (int d = 0; d < count; d++)
        {
            string name = random.Next(6) == 0 ? Garbage(random) : $"0000:{random.Next(256):x2}:{random.Next(32):x2}.{random.Next(8)}";
            if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || expected.ContainsKey(name))
            {
                continue;
            }
            string path = "/sys/bus/pci/devices/" + name;
            sysfs.Add("/sys/bus/pci/devices", name);
            int? group = null;
            if (random.Next(5) != 0)
            {
                bool valid = random.Next(3) != 0;
                int number = random.Next(0, 1 << 16);
                string target = valid ? $"../../../kernel/iommu_groups/{number}" : "../../../kernel/iommu_groups/" + Garbage(random);
                sysfs.Links[path + "/iommu_group"] = target;
                group = valid ? number : int.TryParse(target[(target.TrimEnd('/').LastIndexOf('/') + 1)..].TrimEnd('/'), NumberStyles.None, CultureInfo.InvariantCulture, out int g) ? g : null;
                if (group is int member)
                {
                    sysfs.Add($"/sys/kernel/iommu_groups/{member}/devices", name);
                    if (random.Next(2) == 0)
                    {
                        sysfs.Existing.Add($"/dev/vfio/{member}");
                    }
                }
            }
            string? driver = random.Next(3) switch
            {
                0 => null,
                1 => "vfio-pci",
                _ => Garbage(random) is { Length: > 0 } g2 && !g2.Contains('/', StringComparison.Ordinal) ? g2 : "virtio-pci",
            };
            if (driver is not null)
            {
                sysfs.Links[path + "/driver"] = "../../../bus/pci/drivers/" + driver;
            }
            ushort? vendor = Hex<ushort>(random, sysfs, path + "/vendor", ushort.MaxValue);
            ushort? deviceId = Hex<ushort>(random, sysfs, path + "/device", ushort.MaxValue);
            uint? pciClass = Hex<uint>(random, sysfs, path + "/class", 0xffffff);
            if (random.Next(3) == 0)
            {
                string cdev = random.Next(2) == 0 ? $"vfio{random.Next(64)}" : Garbage(random);
                sysfs.Add(path + "/vfio-dev", cdev);
                sysfs.Existing.Add("/dev/vfio/devices/" + cdev);
            }
            expected[name] = (group, vendor, deviceId, pciClass, driver);
        }

        IReadOnlyList<VfioDeviceEntry> entries = VfioSysfs.ListDevices(sysfs);
        foreach (VfioDeviceEntry entry in entries)
        {
            (int? group, ushort? vendor, ushort? deviceId, uint? pciClass, string? driver) = expected[entry.Name];
            entry.IommuGroup.ShouldBe(group);
            entry.VendorId.ShouldBe(vendor);
            entry.DeviceId.ShouldBe(deviceId);
            entry.PciClass.ShouldBe(pciClass);
            entry.Driver.ShouldBe(driver);
            entry.CdevPath?.ShouldStartWith("/dev/vfio/devices/vfio");
        }
        // Listed: exactly the devices with a group or a VFIO driver.
        entries.Count.ShouldBe(expected.Count(e => e.Value.Group is not null || VfioSysfs.IsVfioDriver(e.Value.Driver)));

        // The fd validator's classification of any /sys/dev/char target never throws.
        string classified = random.Next(2) == 0 ? $"/sys/devices/{Garbage(random)}/vfio-dev/vfio{Garbage(random)}" : "/" + string.Join('/', Enumerable.Range(0, random.Next(5)).Select(_ => Garbage(random)));
        VfioFdIdentity identity = VfioFdValidator.Classify(classified);
        if (identity.Kind == VfioFdKind.DeviceCdev)
        {
            identity.DeviceName.ShouldNotBeNullOrEmpty();
        }
    });

    /// <summary>Writes a hex file, valid (with or without 0x, with a newline) or garbled; returns what the reader must
    /// give.</summary>
    private static T? Hex<T>(Random random, FakeSysfs sysfs, string path, uint max)
        where T : struct
    {
        if (random.Next(6) == 0)
        {
            return null;   // no such file
        }
        if (random.Next(3) == 0)
        {
            string garbage = Garbage(random);
            sysfs.Texts[path] = garbage;
            string digits = garbage.Trim();
            digits = digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? digits[2..] : digits;
            return uint.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint parsed) && parsed <= max
                ? (T)Convert.ChangeType(parsed, typeof(T), CultureInfo.InvariantCulture) : null;
        }
        uint value = (uint)random.NextInt64(0, (long)max + 1);
        sysfs.Texts[path] = (random.Next(2) == 0 ? "0x" : "") + value.ToString(random.Next(2) == 0 ? "x4" : "X", CultureInfo.InvariantCulture);
        return (T)Convert.ChangeType(value, typeof(T), CultureInfo.InvariantCulture);
    }

    private static string Garbage(Random random)
    {
        if (random.Next(2) == 0)
        {
            return s_garbage[random.Next(s_garbage.Length)];
        }
        char[] text = new char[random.Next(0, 12)];
        for (int i = 0; i < text.Length; i++)
        {
            text[i] = (char)random.Next(0, 128);
        }
        return new string(text);
    }

    /// <summary>A sysfs of links, text files and directories in memory, behind the kernel port.</summary>
    private sealed class FakeSysfs : UnsupportedKernel
    {
        public Dictionary<string, string> Links { get; } = [];
        public Dictionary<string, string> Texts { get; } = [];
        public Dictionary<string, List<string>> Directories { get; } = [];
        public HashSet<string> Existing { get; } = [];

        public void Add(string directory, string entry)
        {
            if (!Directories.TryGetValue(directory, out List<string>? entries))
            {
                Directories[directory] = entries = [];
            }
            entries.Add(entry);
        }

        public override int ReadLink(string path, out string target)
            => Links.TryGetValue(path, out target!) ? 0 : Fail(out target);

        public override int ReadText(string path, out string text)
            => Texts.TryGetValue(path, out text!) ? 0 : Fail(out text);

        public override int ListDirectory(string path, out string[] entries)
        {
            entries = Directories.TryGetValue(path, out List<string>? list) ? [.. list] : [];
            return Directories.ContainsKey(path) ? 0 : -(int)Errno.ENOENT;
        }

        public override bool Exists(string path) => Existing.Contains(path) || Directories.ContainsKey(path);

        private static int Fail(out string value)
        {
            value = string.Empty;
            return -(int)Errno.ENOENT;
        }
    }
}
