// SPDX-License-Identifier: MIT
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.DependencyInjection.Tests;

/// <summary>
/// Bad configuration values, as a user writes them in appsettings or on a command line: each stops the host at start
/// (or the manager when first resolved) with an exception naming the setting and what to write instead, and leaves no
/// fd behind. These are the host's: configuration is bound the same whatever the kernel.
/// </summary>
[Collection(nameof(ConfigurationBadInputTests))]
public sealed class ConfigurationBadInputTests
{
    /// <summary>A configuration, the exception it must stop the host with, and what the message must say.</summary>
    private sealed record ConfigCase(Dictionary<string, string?> Settings, Type Error, string[] Says);

    private static ConfigCase Invalid(string key, string value, params string[] says)
        => new(new() { [key] = value }, typeof(OptionsValidationException), says);

    private static ConfigCase InvalidAll(Dictionary<string, string?> settings, params string[] says)
        => new(settings, typeof(OptionsValidationException), says);

    private static readonly string s_longName = new('n', 300);

    private static readonly Dictionary<string, ConfigCase> s_cases = new()
    {
        ["backend-unknown"] = Invalid("Vfio:Backend", "vfio-user", "Vfio:Backend 'vfio-user'", "valid values are"),
        ["backend-empty"] = Invalid("Vfio:Backend", "", "Vfio:Backend ''", "valid values are"),
        ["backend-blank"] = Invalid("Vfio:Backend", "  ", "Vfio:Backend", "valid values are"),
        ["backend-newline"] = Invalid("Vfio:Backend", "legacy\n", "Vfio:Backend", "valid values are"),
        ["backend-misspelt"] = Invalid("Vfio:Backend", "iommu-fd", "Vfio:Backend 'iommu-fd'", "iommufd"),
        ["iommufd-negative"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:IommuFd"] = "-1" }, "Vfio:IommuFd '-1'", "negative", "inherited fd number"),
        ["iommufd-empty"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:IommuFd"] = " " }, "Vfio:IommuFd", "empty", "inherited fd number"),
        ["iommufd-leading-space"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:IommuFd"] = " 3" }, "Vfio:IommuFd ' 3'", "surrounding spaces"),
        ["iommufd-too-large"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:IommuFd"] = "99999999999" }, "Vfio:IommuFd '99999999999'", "too large"),
        ["iommufd-newline"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:IommuFd"] = "iommufd\n" }, "Vfio:IommuFd", "control characters"),
        ["iommufd-long-name"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:IommuFd"] = s_longName }, "Vfio:IommuFd", "255 bytes"),
        ["iommufd-on-legacy"] = InvalidAll(new() { ["Vfio:Backend"] = "legacy", ["Vfio:IommuFd"] = "3" }, "Vfio:IommuFd", "IommuFdAsContainer=true"),
        ["container-negative"] = InvalidAll(new() { ["Vfio:Backend"] = "legacy", ["Vfio:ContainerFd"] = "-5" }, "Vfio:ContainerFd '-5'", "negative"),
        ["container-on-iommufd"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:ContainerFd"] = "3" }, "Vfio:ContainerFd", "set Backend to legacy"),
        ["group-key-not-number"] = InvalidAll(new() { ["Vfio:Backend"] = "legacy", ["Vfio:GroupFds:seven"] = "3" }, "Vfio:GroupFds:seven", "not an IOMMU group number"),
        ["group-key-negative"] = InvalidAll(new() { ["Vfio:Backend"] = "legacy", ["Vfio:GroupFds:-7"] = "3" }, "Vfio:GroupFds:-7", "not an IOMMU group number"),
        ["group-reference-negative"] = InvalidAll(new() { ["Vfio:Backend"] = "legacy", ["Vfio:GroupFds:7"] = "-3" }, "Vfio:GroupFds:7 '-3'", "negative"),
        ["group-on-iommufd"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:GroupFds:7"] = "3" }, "Vfio:GroupFds", "Vfio:DeviceFds instead"),
        ["device-reference-negative"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:DeviceFds:0000_00_02.0"] = "-1" }, "Vfio:DeviceFds:0000_00_02.0 '-1'", "negative"),
        ["device-on-legacy"] = InvalidAll(new() { ["Vfio:Backend"] = "legacy", ["Vfio:DeviceFds:0000_00_02.0"] = "3" }, "Vfio:DeviceFds", "Vfio:GroupFds instead"),
        ["compat-on-iommufd"] = InvalidAll(new() { ["Vfio:Backend"] = "iommufd", ["Vfio:IommuFdAsContainer"] = "true" }, "Vfio:IommuFdAsContainer", "set Backend to legacy"),
        ["socket-negative"] = Invalid("Vfio:FdSocket", "-1", "Vfio:FdSocket -1", "leave it unset"),
        ["timeout-zero"] = Invalid("Vfio:FdReceiveTimeout", "00:00:00", "Vfio:FdReceiveTimeout", "must be positive"),
        ["timeout-negative"] = Invalid("Vfio:FdReceiveTimeout", "-00:00:05", "Vfio:FdReceiveTimeout", "must be positive"),
        ["two-rules-broken"] = InvalidAll(new() { ["Vfio:Backend"] = "nope", ["Vfio:FdSocket"] = "-2" }, "Vfio:Backend 'nope'", "Vfio:FdSocket -2"),
        // Values the configuration binder cannot convert: its own error, which names the key and the type.
        ["socket-not-a-number"] = new(new() { ["Vfio:FdSocket"] = "three" }, typeof(InvalidOperationException), ["Vfio:FdSocket", "three"]),
        ["timeout-not-a-time"] = new(new() { ["Vfio:FdReceiveTimeout"] = "soon" }, typeof(InvalidOperationException), ["Vfio:FdReceiveTimeout", "soon"]),
        ["noiommu-not-a-bool"] = new(new() { ["Vfio:AllowUnsafeNoIommu"] = "maybe" }, typeof(InvalidOperationException), ["Vfio:AllowUnsafeNoIommu", "maybe"]),
    };

    public static TheoryData<string> Cases() => [.. s_cases.Keys];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task ABadConfigurationValue_StopsTheHost_NamingTheSettingAndTheFix(string key)
    {
        ConfigCase bad = s_cases[key];
        using var kernel = new SimulatedKernel(new SimulatedTopology());
        async Task Attempt()
        {
            using IHost host = HostedBackendTests.BuildHost(kernel, bad.Settings);
            Exception e = await Should.ThrowAsync<Exception>(() => host.StartAsync(TestContext.Current.CancellationToken));
            e.GetType().ShouldBe(bad.Error, e.ToString());
            foreach (string text in bad.Says)
            {
                e.Message.ShouldContain(text, Case.Sensitive, e.Message);
            }
        }
        // The first attempt may make the runtime's own lazily created fds (a socket engine's epoll): the second measures.
        await Attempt();
        int before = StableFdCount(-1);
        await Attempt();
        StableFdCount(before).ShouldBe(before, "the refused start left an fd open");
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    /// <summary>An fd socket that cannot deliver: a number never opened, a file that is not a socket, a socket on which
    /// nothing arrives. The manager is not made; the error names <c>Vfio:FdSocket</c> and its number, with the fix.</summary>
    [Theory]
    [InlineData("closed")]
    [InlineData("not-a-socket")]
    [InlineData("silent")]
    public void ABadFdSocket_FailsTheManager_NamingTheSocket(string kind)
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology());
        System.Net.Sockets.Socket? a = null, b = null;
        SafeFileHandle? file = null;
        int fd;
        switch (kind)
        {
            case "closed":
                fd = 4000;
                break;
            case "not-a-socket":
                file = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.ReadWrite);
                fd = (int)file.DangerousGetHandle();
                break;
            default:
                (a, b) = SocketPair();
                fd = (int)b.SafeHandle.DangerousGetHandle();
                break;
        }
        try
        {
            void Attempt()
            {
                using IHost host = HostedBackendTests.BuildHost(kernel, new()
                {
                    ["Vfio:FdSocket"] = fd.ToString(CultureInfo.InvariantCulture),
                    ["Vfio:FdReceiveTimeout"] = "00:00:00.200",
                });
                Exception e = Should.Throw<Exception>(() => host.Services.GetRequiredService<VfioManager>());
                e.GetType().ShouldBe(kind == "silent" ? typeof(TimeoutException) : typeof(VfioException), e.ToString());
                e.Message.ShouldContain($"Vfio:FdSocket ({fd})");
                e.Message.ShouldContain(kind == "silent" ? "FdPassing.Send" : "launcher must start this process");
            }
            Attempt();   // the runtime's own lazily created fds, if any, come here: the second attempt measures
            int before = StableFdCount(-1);
            Attempt();
            StableFdCount(before).ShouldBe(before, "the failed receive left an fd open (or closed the borrowed socket)");
        }
        finally
        {
            file?.Dispose();
            a?.Dispose();
            b?.Dispose();
        }
    }

    /// <summary>The process's fd count once it stops changing (the runtime opens and closes fds of its own now and
    /// then); with <paramref name="expected"/> ≥ 0, waits up to a second for that count.</summary>
    private static int StableFdCount(int expected)
    {
        int count = FdCount();
        for (int i = 0; i < 20; i++)
        {
            Thread.Sleep(20);
            int again = FdCount();
            if (again == count && (expected < 0 || again == expected))
            {
                break;
            }
            count = again;
        }
        return count;
    }

    /// <summary>The process's fds, without the assemblies the runtime maps on first use (and keeps open).</summary>
    private static int FdCount() => new DirectoryInfo("/proc/self/fd").GetFileSystemInfos()
        .Count(f => f.LinkTarget is not { } target || !(target.EndsWith(".dll", StringComparison.Ordinal) || target.EndsWith(".so", StringComparison.Ordinal)));

    private static (System.Net.Sockets.Socket A, System.Net.Sockets.Socket B) SocketPair()
    {
        string path = Path.Combine(Path.GetTempPath(), $"cfg-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        listener.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        try
        {
            var a = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            a.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
            return (a, listener.Accept());
        }
        finally
        {
            File.Delete(path);
        }
    }
}

/// <summary>The fd counts of <see cref="ConfigurationBadInputTests"/> are the process's: its cases run alone, after the
/// parallel ones.</summary>
[CollectionDefinition(nameof(ConfigurationBadInputTests), DisableParallelization = true)]
public sealed class ConfigurationBadInputCollection;
