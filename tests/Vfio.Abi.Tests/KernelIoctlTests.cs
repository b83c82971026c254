// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;
using Vfio.Core.Interop;

namespace Vfio.Abi.Tests;

/// <summary>Every ioctl number of <see cref="VfioUapi"/> and <see cref="IommuUapi"/> against the header macro, for the host architecture.</summary>
public sealed class KernelIoctlTests
{
    [Theory]
    [MemberData(nameof(UapiModel.IoctlNames), MemberType = typeof(UapiModel))]
    public void Ioctl_MatchesKernelHeaders(string name)
    {
        var managed = UapiModel.Ioctl(name);
        var kernel = KernelProbe.Host;
        kernel.ThrowIfNotCompiled(KernelProbe.IoctlKey(name));

        var c = kernel.Ioctls[name];
        ((ulong)managed.Value).ShouldBe(c, $"{managed.DeclaringType.Name}.{name}: C# 0x{managed.Value:X}, C 0x{c:X} ({IoctlEncoding.Current})");
    }
}
