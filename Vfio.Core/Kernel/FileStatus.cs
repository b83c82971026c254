// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>What <see cref="IKernel.GetStatus"/> reports about an open file.</summary>
/// <param name="Type">The file type.</param>
/// <param name="DeviceMajor">For a character device, the major number of the device it is (<c>st_rdev</c>).</param>
/// <param name="DeviceMinor">For a character device, the minor number.</param>
/// <param name="Inode">The inode number; two fds with the same <see cref="Inode"/> and file system refer to the same file.</param>
/// <param name="FileSystemMajor">The major number of the file system holding the inode (<c>st_dev</c>).</param>
/// <param name="FileSystemMinor">The minor number of that file system.</param>
public readonly record struct FileStatus(FileType Type, uint DeviceMajor, uint DeviceMinor, ulong Inode, uint FileSystemMajor, uint FileSystemMinor)
{
    /// <summary>The character device number as sysfs spells it, <c>major:minor</c> (the name under <c>/sys/dev/char</c>).</summary>
    public string DeviceNumber => $"{DeviceMajor}:{DeviceMinor}";
}

/// <summary>File types (<c>S_IFMT</c>).</summary>
public enum FileType
{
    /// <summary>A type this library does not name.</summary>
    Unknown = 0,
    /// <summary>A regular file (also a memfd).</summary>
    Regular,
    /// <summary>A directory.</summary>
    Directory,
    /// <summary>A character device, e.g. <c>/dev/iommu</c>, a VFIO group or cdev.</summary>
    CharacterDevice,
    /// <summary>A block device.</summary>
    BlockDevice,
    /// <summary>A pipe or FIFO.</summary>
    Fifo,
    /// <summary>A socket.</summary>
    Socket,
    /// <summary>A symbolic link.</summary>
    SymbolicLink,
    /// <summary>An anonymous inode without a file type, e.g. a VFIO device fd from <c>VFIO_GROUP_GET_DEVICE_FD</c> or an eventfd.</summary>
    AnonymousInode,
}
