// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Core.Tests;

public sealed class VfioExceptionTests
{
    [Fact]
    public void Message_NamesOperationObjectErrnoAndHint()
    {
        var e = new VfioException(Errno.EPERM, "VFIO_SET_IOMMU", "/dev/vfio/vfio");
        e.Errno.ShouldBe(Errno.EPERM);
        e.HResult.ShouldBe(1);
        e.Operation.ShouldBe("VFIO_SET_IOMMU");
        e.ObjectName.ShouldBe("/dev/vfio/vfio");
        e.Message.ShouldStartWith("VFIO_SET_IOMMU failed on /dev/vfio/vfio: Operation not permitted (EPERM, errno 1).");
        e.Hint.ShouldNotBeNull().ShouldContain("allow_unsafe_interrupts");
        e.Message.ShouldEndWith(e.Hint);
        e.ShouldBeAssignableTo<IOException>();
    }

    [Fact]
    public void Message_UnknownCombination_HasNoHint()
    {
        var e = new VfioException(Errno.EXDEV, "IOMMU_IOAS_COPY", "ioas 2");
        e.Hint.ShouldBeNull();
        e.Message.ShouldBe("IOMMU_IOAS_COPY failed on ioas 2: Invalid cross-device link (EXDEV, errno 18).");
    }

    [Fact]
    public void Message_LibraryDetected_NoErrno()
    {
        var e = new VfioException("validate passed fd", "Vfio:IommuFd", "expected an iommufd", "Pass the right fd.");
        e.Errno.ShouldBe(Errno.None);
        e.Message.ShouldBe("validate passed fd on Vfio:IommuFd: expected an iommufd. Pass the right fd.");
    }

    [Theory]
    [InlineData("/dev/iommu", "CONFIG_IOMMUFD")]
    [InlineData("/dev/vfio/vfio", "vfio-pci")]
    [InlineData("/dev/vfio/devices/vfio0", "CONFIG_VFIO_DEVICE_CDEV")]
    [InlineData("/dev/vfio/7", "bind every device")]
    public void Open_Enoent_HintNamesTheMissingFeature(string path, string hint)
        => new VfioException(Errno.ENOENT, "open", path).Message.ShouldContain(hint);

    [Fact]
    public void ThrowIfFailed_PassesResultsThrough_ThrowsOnNegated()
    {
        VfioException.ThrowIfFailed(5, "VFIO_CHECK_EXTENSION", "/dev/vfio/vfio").ShouldBe(5);
        VfioException.ThrowIfFailed(0L, "pread", "device").ShouldBe(0L);
        VfioException e = Should.Throw<VfioException>(() => VfioException.ThrowIfFailed(-(int)Errno.ENOSPC, "VFIO_IOMMU_MAP_DMA", "container 3"));
        e.Errno.ShouldBe(Errno.ENOSPC);
        e.Message.ShouldContain("dma_entry_limit");
        Should.Throw<VfioException>(() => VfioException.ThrowIfFailed(-22L, "pwrite", "device")).Errno.ShouldBe(Errno.EINVAL);
    }

    [Fact]
    public void Subtypes_CarryWhatCallersBranchOn()
    {
        var unavailable = new VfioBackendUnavailableException("iommufd", "CONFIG_IOMMUFD (/dev/iommu)", Errno.ENOENT, "Use the legacy backend.");
        unavailable.Backend.ShouldBe("iommufd");
        unavailable.MissingFeature.ShouldBe("CONFIG_IOMMUFD (/dev/iommu)");
        unavailable.Message.ShouldContain("the iommufd backend is unavailable: missing CONFIG_IOMMUFD (/dev/iommu)");
        unavailable.ShouldBeAssignableTo<VfioException>();

        var unusable = new VfioDeviceUnusableException("VFIO_GROUP_GET_STATUS", "group 7", "group 7 is not viable", "Bind 0000:00:03.0 to vfio-pci.");
        unusable.ObjectName.ShouldBe("group 7");
        unusable.Message.ShouldBe("VFIO_GROUP_GET_STATUS on group 7: group 7 is not viable. Bind 0000:00:03.0 to vfio-pci.");
    }

    [Fact]
    public void Errno_ValuesMatchLinux()
    {
        // Spot checks against asm-generic/errno*.h; the ABI tests compare the full set with the C headers.
        ((int)Errno.ENOTTY).ShouldBe(25);
        ((int)Errno.EOPNOTSUPP).ShouldBe(95);
        ((int)Errno.EOVERFLOW).ShouldBe(75);
    }
}
