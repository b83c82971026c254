// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core.Interop;

namespace Vfio.Core.Tests;

public sealed class LinuxKernelTests
{
    private readonly IKernel _kernel = LinuxKernel.Instance;

    [Fact]
    public void Open_MissingPath_ReturnsNegatedEnoent()
    {
        int rc = _kernel.Open("/nonexistent/vfio/42", OpenFlags.ReadWrite, out SafeFileHandle handle);
        rc.ShouldBe(-(int)Errno.ENOENT);
        handle.IsInvalid.ShouldBeTrue();
    }

    [Fact]
    public void Open_AddsCloseOnExec()
    {
        _kernel.Open("/dev/null", OpenFlags.ReadWrite, out SafeFileHandle handle).ShouldBe(0);
        using (handle)
        {
            (Libc.fcntl(handle, Libc.F_GETFD, 0) & Libc.FD_CLOEXEC).ShouldBe(Libc.FD_CLOEXEC);
        }
    }

    [Fact]
    public void PReadPWrite_AtOffsets_RoundTrip()
    {
        using SafeFileHandle fd = TestFiles.MemFd(8192);
        _kernel.PWrite(fd, "edu"u8, 4096).ShouldBe(3);
        Span<byte> buffer = stackalloc byte[3];
        _kernel.PRead(fd, buffer, 4096).ShouldBe(3);
        Encoding.ASCII.GetString(buffer).ShouldBe("edu");
        _kernel.PRead(fd, buffer, 0).ShouldBe(3);
        buffer.ToArray().ShouldBe(new byte[3]);
    }

    [Fact]
    public void MapAligned_PlacesTheMappingOnTheBoundary_AndKeepsNoneOfTheReservation()
    {
        const ulong Length = 3UL << 20, Alignment = 1UL << 30;
        using SafeFileHandle fd = TestFiles.MemFd((int)Length);
        ulong reservedBefore = ProcessMaps.ReservedBytes();
        _kernel.MapAligned(fd, 0, Length, MemoryProtection.ReadWrite, Alignment, out MemoryMapping? mapping).ShouldBe(0);
        using (mapping)
        {
            nint address = mapping!.DangerousGetHandle();
            ((ulong)address % Alignment).ShouldBe(0UL);
            mapping.Length.ShouldBe(Length);
            mapping.Write32(Length - 4, 0x5AA5_0FF0);
            Span<byte> back = stackalloc byte[4];
            _kernel.PRead(fd, back, (long)Length - 4).ShouldBe(4);
            BitConverter.ToUInt32(back).ShouldBe(0x5AA5_0FF0u);   // shared: the file sees the write
            ProcessMaps.Range(address).ShouldBe(((ulong)address, (ulong)address + Length, "rw-s"));
            // The 1 GiB of PROT_NONE reserved to find the boundary was released (the runtime's own reservations
            // move by far less meanwhile).
            ((long)ProcessMaps.ReservedBytes() - (long)reservedBefore).ShouldBeLessThan((long)Alignment);
        }
    }

    [Fact]
    public void MapAligned_Failure_ReleasesTheWholeReservation()
    {
        // An eventfd has no mmap: the fixed mapping fails with ENODEV after the address space was reserved.
        const ulong Length = 0x1F3000, Alignment = 1UL << 30;
        using var notMappable = new InterruptEvent();
        ulong reservedBefore = ProcessMaps.ReservedBytes();
        _kernel.MapAligned(notMappable.Handle, 0, Length, MemoryProtection.ReadWrite, Alignment, out MemoryMapping? mapping).ShouldBe(-(int)Errno.ENODEV);
        mapping.ShouldBeNull();
        ((long)ProcessMaps.ReservedBytes() - (long)reservedBefore).ShouldBeLessThan((long)Alignment);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(0x800UL)]
    [InlineData(0x3000UL)]
    public void MapAligned_AnAlignmentThatIsNotAPowerOfTwoPage_IsRefused(ulong alignment)
    {
        using SafeFileHandle fd = TestFiles.MemFd(4096);
        Should.Throw<ArgumentOutOfRangeException>(() => _kernel.MapAligned(fd, 0, 4096, MemoryProtection.Read, alignment, out _))
            .ParamName.ShouldBe("alignment");
    }

    [Fact]
    public void PRead_ClosedPipeEnd_ReturnsNegatedErrno()
    {
        // A directory fd cannot be read: EISDIR (21) comes back negated, never -1.
        using SafeFileHandle dir = Libc.open("/", Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        _kernel.PRead(dir, new byte[8], 0).ShouldBe(-21);
    }

    [Fact]
    public void Ioctl_UnknownRequestOnRegularFile_ReturnsNegatedEnotty()
    {
        using SafeFileHandle fd = TestFiles.MemFd(4096);
        _kernel.Ioctl(fd, VfioUapi.VFIO_GROUP_GET_STATUS, 0).ShouldBe(-(int)Errno.ENOTTY);
        Span<byte> status = stackalloc byte[8];
        _kernel.Ioctl(fd, VfioUapi.VFIO_GROUP_GET_STATUS, status).ShouldBe(-(int)Errno.ENOTTY);
    }

    [Fact]
    public void Map_MemFd_AccessorsReadWhatWasWritten()
    {
        using SafeFileHandle fd = TestFiles.MemFd(8192);
        _kernel.Map(fd, 4096, 4096, MemoryProtection.ReadWrite, out MemoryMapping? mapping).ShouldBe(0);
        using (mapping)
        {
            mapping.ShouldNotBeNull();
            mapping.Length.ShouldBe(4096UL);
            mapping.FileOffset.ShouldBe(4096);
            mapping.Write32(0, 0x010000ed);
            mapping.Write64(8, 0x1122334455667788);
            mapping.Write16(16, 0xBEEF);
            mapping.Write8(18, 0x7F);
            mapping.Read32(0).ShouldBe(0x010000edu);
            mapping.Read64(8).ShouldBe(0x1122334455667788UL);
            mapping.Read16(16).ShouldBe((ushort)0xBEEF);
            mapping.Read8(18).ShouldBe((byte)0x7F);
        }
        // The mapping was shared: the file sees the bytes (little-endian).
        Span<byte> bytes = stackalloc byte[4];
        _kernel.PRead(fd, bytes, 4096).ShouldBe(4);
        bytes.ToArray().ShouldBe(new byte[] { 0xed, 0x00, 0x00, 0x01 });
    }

    [Fact]
    public void Map_AccessOutsideOrMisaligned_Throws()
    {
        using SafeFileHandle fd = TestFiles.MemFd(4096);
        _kernel.Map(fd, 0, 4096, MemoryProtection.ReadWrite, out MemoryMapping? mapping).ShouldBe(0);
        using (mapping)
        {
            Should.Throw<ArgumentOutOfRangeException>(() => mapping!.Read32(4094));
            Should.Throw<ArgumentOutOfRangeException>(() => mapping!.Read64(ulong.MaxValue - 3));
            Should.Throw<ArgumentException>(() => mapping!.Write32(2, 1));
            mapping!.Read32(4092).ShouldBe(0u);
        }
    }

    [Fact]
    public void Map_AfterDispose_AccessThrowsObjectDisposed()
    {
        using SafeFileHandle fd = TestFiles.MemFd(4096);
        _kernel.Map(fd, 0, 4096, MemoryProtection.ReadWrite, out MemoryMapping? mapping).ShouldBe(0);
        mapping!.Dispose();
        Should.Throw<ObjectDisposedException>(() => mapping.Read32(0));
    }

    [Fact]
    public void Map_BeyondEndOfDirectory_ReturnsNegatedErrno()
    {
        using SafeFileHandle dir = Libc.open("/", Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        _kernel.Map(dir, 0, 4096, MemoryProtection.Read, out MemoryMapping? mapping).ShouldBeLessThan(0);
        mapping.ShouldBeNull();
    }

    [Fact]
    public void GetStatus_DevNull_IsCharacterDevice1_3()
    {
        _kernel.Open("/dev/null", OpenFlags.ReadOnly, out SafeFileHandle handle).ShouldBe(0);
        using (handle)
        {
            _kernel.GetStatus(handle, out FileStatus status).ShouldBe(0);
            status.Type.ShouldBe(FileType.CharacterDevice);
            status.DeviceNumber.ShouldBe("1:3");
        }
    }

    [Fact]
    public void GetStatus_DuplicatedFd_SameInode()
    {
        using SafeFileHandle fd = TestFiles.MemFd(4096);
        int dup = Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0);
        dup.ShouldBeGreaterThanOrEqualTo(0);
        using var copy = new SafeFileHandle(dup, ownsHandle: true);
        _kernel.GetStatus(fd, out FileStatus a).ShouldBe(0);
        _kernel.GetStatus(copy, out FileStatus b).ShouldBe(0);
        a.Type.ShouldBe(FileType.Regular);
        b.Inode.ShouldBe(a.Inode);
    }

    [Fact]
    public void GetStatus_Eventfd_IsAnonymousInode()
    {
        using var evt = new InterruptEvent();
        _kernel.GetStatus(evt.Handle, out FileStatus status).ShouldBe(0);
        status.Type.ShouldBe(FileType.AnonymousInode);
    }

    [Fact]
    public void ReadLink_ProcSelfFd_NamesTheFile()
    {
        using var evt = new InterruptEvent();
        _kernel.ReadLink($"/proc/self/fd/{evt.Handle.DangerousGetHandle()}", out string target).ShouldBe(0);
        target.ShouldBe("anon_inode:[eventfd]");
        _kernel.ReadLink("/nonexistent-link", out string missing).ShouldBe(-(int)Errno.ENOENT);
        missing.ShouldBeEmpty();
    }

    [Fact]
    public void ReadText_File_TrailingNewlineRemoved()
    {
        string path = TestFiles.TempPath(".txt");
        File.WriteAllText(path, "0x1234\n");
        try
        {
            _kernel.ReadText(path, out string text).ShouldBe(0);
            text.ShouldBe("0x1234");
            _kernel.ReadText(path + ".missing", out _).ShouldBe(-(int)Errno.ENOENT);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ReadText_LargerThanAPage_ReadsAll()
    {
        string path = TestFiles.TempPath(".txt");
        string content = new('x', 10000);
        File.WriteAllText(path, content);
        try
        {
            _kernel.ReadText(path, out string text).ShouldBe(0);
            text.ShouldBe(content);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ListDirectory_SortedWithoutDots()
    {
        string dir = TestFiles.TempPath("");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "b"), "");
            File.WriteAllText(Path.Combine(dir, "a"), "");
            File.CreateSymbolicLink(Path.Combine(dir, "c"), "/nonexistent");
            _kernel.ListDirectory(dir, out string[] entries).ShouldBe(0);
            entries.ShouldBe(["a", "b", "c"]);
            _kernel.ListDirectory(Path.Combine(dir, "a"), out _).ShouldBe(-(int)Errno.ENOTDIR);
            _kernel.ListDirectory(Path.Combine(dir, "missing"), out string[] none).ShouldBe(-(int)Errno.ENOENT);
            none.ShouldBeEmpty();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Exists_DanglingSymlink_IsTrue_MissingIsFalse()
    {
        string link = TestFiles.TempPath(".lnk");
        File.CreateSymbolicLink(link, "/nonexistent");
        try
        {
            _kernel.Exists(link).ShouldBeTrue();
            _kernel.Exists(link + ".missing").ShouldBeFalse();
            _kernel.Exists("/dev/null").ShouldBeTrue();
        }
        finally
        {
            File.Delete(link);
        }
    }

    [Fact]
    public void Ioctl_SteadyState_AllocatesNothing()
    {
        using SafeFileHandle fd = TestFiles.MemFd(4096);
        byte[] buffer = new byte[8];
        for (int i = 0; i < 100; i++)
        {
            // Warm up past tiered compilation.
            _ = _kernel.PRead(fd, buffer, 0);
            _ = _kernel.PWrite(fd, buffer, 0);
            _ = _kernel.Ioctl(fd, VfioUapi.VFIO_GROUP_GET_STATUS, buffer);
            _ = _kernel.Ioctl(fd, VfioUapi.VFIO_GROUP_GET_STATUS, 0);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            _ = _kernel.PRead(fd, buffer, 0);
            _ = _kernel.PWrite(fd, buffer, 0);
            _ = _kernel.Ioctl(fd, VfioUapi.VFIO_GROUP_GET_STATUS, buffer);
            _ = _kernel.Ioctl(fd, VfioUapi.VFIO_GROUP_GET_STATUS, 0);
        }
        (GC.GetAllocatedBytesForCurrentThread() - before).ShouldBe(0);
    }
}

/// <summary>Reads <c>/proc/self/maps</c>.</summary>
internal static class ProcessMaps
{
    /// <summary>The range and permissions of the mapping that contains <paramref name="address"/>.</summary>
    internal static (ulong Start, ulong End, string Permissions) Range(nint address)
        => Read().First(m => (ulong)address >= m.Start && (ulong)address < m.End);

    /// <summary>The bytes of address space held by private mappings without access (<c>---p</c>: reservations).</summary>
    internal static ulong ReservedBytes()
    {
        ulong total = 0;
        foreach ((ulong start, ulong end, string permissions) in Read())
        {
            total += permissions == "---p" ? end - start : 0;
        }
        return total;
    }

    private static List<(ulong Start, ulong End, string Permissions)> Read()
    {
        var maps = new List<(ulong, ulong, string)>();
        foreach (string line in File.ReadAllLines("/proc/self/maps"))
        {
            string[] fields = line.Split(' ', 3);
            string[] range = fields[0].Split('-');
            maps.Add((ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture), fields[1]));
        }
        return maps;
    }
}
