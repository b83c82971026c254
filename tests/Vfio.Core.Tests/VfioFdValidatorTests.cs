// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;

namespace Vfio.Core.Tests;

public sealed class VfioFdValidatorTests
{
    [Theory]
    [InlineData("/sys/devices/virtual/misc/iommu", VfioFdKind.IommuFd, "iommu", null)]
    [InlineData("/sys/devices/virtual/misc/vfio", VfioFdKind.Container, "vfio", null)]
    [InlineData("/sys/devices/virtual/vfio/7", VfioFdKind.Group, "7", null)]
    [InlineData("/sys/devices/virtual/vfio/noiommu-0", VfioFdKind.NoIommuGroup, "0", null)]
    [InlineData("/sys/devices/pci0000:00/0000:00:02.0/vfio-dev/vfio0", VfioFdKind.DeviceCdev, "vfio0", "0000:00:02.0")]
    [InlineData("/sys/devices/platform/LNRO0005:00/vfio-dev/vfio12", VfioFdKind.DeviceCdev, "vfio12", "LNRO0005:00")]
    [InlineData("/sys/devices/virtual/misc/kvm", VfioFdKind.Unknown, "/sys/devices/virtual/misc/kvm", null)]
    [InlineData("/sys/devices/virtual/vfio/noiommu-x", VfioFdKind.Unknown, "/sys/devices/virtual/vfio/noiommu-x", null)]
    [InlineData("/sys/devices/virtual/mem/null", VfioFdKind.Unknown, "/sys/devices/virtual/mem/null", null)]
    public void Classify_SysfsPath_Kind(string path, VfioFdKind kind, string name, string? device)
    {
        VfioFdIdentity identity = VfioFdValidator.Classify(path);
        identity.Kind.ShouldBe(kind);
        identity.Name.ShouldBe(name);
        identity.DeviceName.ShouldBe(device);
    }

    [Fact]
    public void Identify_RealDevNull_IsUnknownCharacterDevice()
    {
        IKernel kernel = LinuxKernel.Instance;
        kernel.Open("/dev/null", OpenFlags.ReadOnly, out SafeFileHandle handle).ShouldBe(0);
        using (handle)
        {
            VfioFdIdentity identity = VfioFdValidator.Identify(kernel, handle);
            identity.Kind.ShouldBe(VfioFdKind.Unknown);
            VfioException e = Should.Throw<VfioException>(() => VfioFdValidator.Expect(kernel, handle, VfioFdKind.IommuFd, "Vfio:IommuFd"));
            e.ObjectName.ShouldBe("Vfio:IommuFd");
            e.Message.ShouldContain("expected an iommufd (/dev/iommu)");
            e.Message.ShouldContain("/sys/devices/virtual/mem/null");
        }
    }

    [Fact]
    public void Identify_Eventfd_IsUnknown()
    {
        using var evt = new InterruptEvent();
        VfioFdValidator.Identify(LinuxKernel.Instance, evt.Handle).Kind.ShouldBe(VfioFdKind.Unknown);
    }

    [Fact]
    public void Identify_ClosedFd_ThrowsEbadf()
    {
        // A number no process can have open (above any RLIMIT_NOFILE): closing a real fd and reusing its number races
        // with the tests running in parallel, which may be given the same number at once.
        var borrowed = new SafeFileHandle(int.MaxValue - 1, ownsHandle: false);
        Should.Throw<VfioException>(() => VfioFdValidator.Identify(LinuxKernel.Instance, borrowed)).Errno.ShouldBe(Errno.EBADF);
    }

    [Theory]
    [InlineData("10:123", "../../devices/virtual/misc/iommu", VfioFdKind.IommuFd)]
    [InlineData("10:196", "../../devices/virtual/misc/vfio", VfioFdKind.Container)]
    [InlineData("244:2", "../../devices/virtual/vfio/2", VfioFdKind.Group)]
    [InlineData("236:0", "../../devices/pci0000:00/0000:00:02.0/vfio-dev/vfio0", VfioFdKind.DeviceCdev)]
    public void Expect_CharacterDeviceThroughThePort_MatchesSysfs(string devno, string linkTarget, VfioFdKind kind)
    {
        var kernel = new FakeSysfsKernel(devno, linkTarget);
        using var fd = new SafeFileHandle(0, ownsHandle: false);
        VfioFdIdentity identity = VfioFdValidator.Expect(kernel, fd, kind, "passed fd");
        identity.SysfsPath.ShouldBe("/sys/" + linkTarget.Replace("../../", "", StringComparison.Ordinal));
        kernel.LinksRead.ShouldBe([$"/sys/dev/char/{devno}"]);
    }

    [Fact]
    public void Expect_AnonymousVfioDevice_ThroughProcSelfFd()
    {
        var kernel = new FakeSysfsKernel(null, "anon_inode:[vfio-device]");
        using var fd = new SafeFileHandle(9, ownsHandle: false);
        VfioFdValidator.Expect(kernel, fd, VfioFdKind.Device, "device fd").Name.ShouldBe("[vfio-device]");
        kernel.LinksRead.ShouldBe(["/proc/self/fd/9"]);
    }

    /// <summary>Answers fstat and readlink as a kernel with one VFIO object would; nothing else.</summary>
    private sealed class FakeSysfsKernel(string? devno, string linkTarget) : IKernel
    {
        public List<string> LinksRead { get; } = [];

        public int GetStatus(SafeHandle fd, out FileStatus status)
        {
            if (devno is null)
            {
                status = new FileStatus(FileType.AnonymousInode, 0, 0, 42, 0, 13);
                return 0;
            }
            string[] parts = devno.Split(':');
            status = new FileStatus(FileType.CharacterDevice, uint.Parse(parts[0]), uint.Parse(parts[1]), 42, 0, 6);
            return 0;
        }

        public int ReadLink(string path, out string target)
        {
            LinksRead.Add(path);
            target = linkTarget;
            return 0;
        }

        public int Open(string path, OpenFlags flags, out SafeFileHandle handle) => throw new NotSupportedException();
        public int Ioctl(SafeHandle fd, uint request, nint argument) => throw new NotSupportedException();
        public unsafe int Ioctl(SafeHandle fd, uint request, void* argument) => throw new NotSupportedException();
        public int Ioctl(SafeHandle fd, uint request, Span<byte> argument) => throw new NotSupportedException();
        public long PRead(SafeHandle fd, Span<byte> buffer, long offset) => throw new NotSupportedException();
        public long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset) => throw new NotSupportedException();
        public int Map(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping) => throw new NotSupportedException();
        public int MapAligned(SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping) => throw new NotSupportedException();
        public int MapAnonymous(ulong length, out MemoryMapping? mapping) => throw new NotSupportedException();
        public int LockMemory(MemoryMapping mapping) => throw new NotSupportedException();
        public int ReadText(string path, out string text) => throw new NotSupportedException();
        public int ListDirectory(string path, out string[] entries) => throw new NotSupportedException();
        public bool Exists(string path) => throw new NotSupportedException();
    }
}
