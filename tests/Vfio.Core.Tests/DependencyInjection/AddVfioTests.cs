// SPDX-License-Identifier: MIT
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;
using Shouldly;

namespace Vfio.Core.Tests.DependencyInjection;

public sealed class AddVfioTests
{
    private static IConfiguration Section(params (string Key, string Value)[] settings)
        => new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build()
            .GetSection(VfioOptions.SectionName);

    /// <summary>A provider with AddVfio from <paramref name="settings"/>, both fake backends and a fake machine.</summary>
    private static ServiceProvider Provider(IKernel kernel, params (string Key, string Value)[] settings)
    {
        var services = new ServiceCollection();
        services.AddSingleton(kernel);
        VfioBuilder builder = services.AddVfio(Section(settings));
        AddFakeBackends(builder);
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    private static void AddFakeBackends(VfioBuilder builder)
    {
        builder.AddBackend(new IommuBackendDescriptor("legacy", 10, _ => new FakeBackend("legacy")));
        builder.AddBackend(new IommuBackendDescriptor("iommufd", 20,
            context => new FakeBackend("iommufd") { Machine = context.Kernel, Node = "/dev/iommu" }));
    }

    [Theory]
    [InlineData("iommufd", true, "iommufd")]
    [InlineData("iommufd", false, "iommufd")]
    [InlineData("legacy", true, "legacy")]
    [InlineData("LEGACY", true, "legacy")]
    [InlineData("auto", true, "iommufd")]
    [InlineData("auto", false, "legacy")]
    public void Backend_FromConfiguration_ResolvesTheRightBackend(string configured, bool hasDevIommu, string expected)
    {
        IKernel kernel = hasDevIommu ? new FakeMachineKernel("/dev/iommu") : new FakeMachineKernel();
        using ServiceProvider sp = Provider(kernel, ("Vfio:Backend", configured));

        IIommuBackend backend = sp.GetRequiredService<VfioManager>().SelectDefaultBackend();

        backend.ShouldBeOfType<FakeBackend>().Name.ShouldBe(expected);
        sp.GetRequiredService<VfioManager>().Backends.Select(b => b.Name).ShouldBe(["iommufd", "legacy"]);
        backend.ShouldBeSameAs(sp.GetRequiredService<VfioManager>().Backends.Single(b => b.Name == expected));
    }

    [Fact]
    public void Defaults_AreBound_AndTheKernelIsTheRunningOneUnlessReplaced()
    {
        var services = new ServiceCollection();
        services.AddVfio(Section(("Vfio:GroupFds:7", "group7"), ("Vfio:FdReceiveTimeout", "00:00:05"), ("Vfio:AllowUnsafeNoIommu", "true")));
        using ServiceProvider sp = services.BuildServiceProvider();
        VfioOptions options = sp.GetRequiredService<IOptions<VfioOptions>>().Value;
        options.Backend.ShouldBe("auto");
        options.GroupFds.ShouldBe(new Dictionary<string, string> { ["7"] = "group7" });
        options.FdReceiveTimeout.ShouldBe(TimeSpan.FromSeconds(5));
        options.AllowUnsafeNoIommu.ShouldBeTrue();
        sp.GetRequiredService<IKernel>().ShouldBeSameAs(LinuxKernel.Instance);
        sp.GetRequiredService<VfioFdStore>().Names.ShouldBeEmpty();
        sp.GetRequiredService<VfioMetrics>().ShouldNotBeNull();
    }

    [Fact]
    public void Action_ConfiguresTheOptions()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel());
        AddFakeBackends(services.AddVfio(o => o.Backend = "legacy"));
        using ServiceProvider sp = services.BuildServiceProvider();
        sp.GetRequiredService<VfioManager>().SelectDefaultBackend().Name.ShouldBe("legacy");
    }

    [Fact]
    public async Task UnknownBackend_FailsWhenTheHostStarts_ListingTheValidValues()
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection([new KeyValuePair<string, string?>("Vfio:Backend", "iommu-fd")]);
        AddFakeBackends(builder.Services.AddVfio(builder.Configuration.GetSection(VfioOptions.SectionName)));
        using IHost host = builder.Build();

        OptionsValidationException e = await Should.ThrowAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));

        e.Message.ShouldContain("'iommu-fd' is not a backend");
        e.Message.ShouldContain("auto, legacy, iommufd, spapr-tce");
    }

    [Fact]
    public async Task ValidOptions_LetTheHostStart()
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection([new KeyValuePair<string, string?>("Vfio:Backend", "legacy")]);
        AddFakeBackends(builder.Services.AddVfio(builder.Configuration.GetSection(VfioOptions.SectionName)));
        using IHost host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        await host.StopAsync(TestContext.Current.CancellationToken);
    }

    [Theory]
    [InlineData("Vfio:Backend=iommufd", "Vfio:ContainerFd=4", "Vfio:ContainerFd passes a legacy container")]
    [InlineData("Vfio:Backend=iommufd", "Vfio:GroupFds:7=group7", "Vfio:GroupFds passes legacy groups")]
    [InlineData("Vfio:Backend=iommufd", "Vfio:IommuFdAsContainer=true", "Vfio:IommuFdAsContainer")]
    [InlineData("Vfio:Backend=legacy", "Vfio:DeviceFds:edu=edu", "Vfio:DeviceFds passes device cdevs")]
    [InlineData("Vfio:Backend=legacy", "Vfio:IommuFd=iommufd", "without Vfio:IommuFdAsContainer")]
    [InlineData("Vfio:Backend=auto", "Vfio:IommuFd=-3", "'-3' is a negative number")]
    [InlineData("Vfio:Backend=auto", "Vfio:ContainerFd= ", "is empty")]
    [InlineData("Vfio:Backend=auto", "Vfio:ContainerFd=12345678901", "too large")]
    [InlineData("Vfio:Backend=auto", "Vfio:GroupFds:x=group", "'x' is not an IOMMU group number")]
    [InlineData("Vfio:Backend=auto", "Vfio:FdSocket=-1", "Vfio:FdSocket -1")]
    [InlineData("Vfio:Backend=auto", "Vfio:FdReceiveTimeout=00:00:00", "must be positive")]
    public void ConflictingOrMalformedFdSettings_FailValidation(string backend, string setting, string expected)
    {
        (string Key, string Value) Split(string s) => (s[..s.IndexOf('=', StringComparison.Ordinal)], s[(s.IndexOf('=', StringComparison.Ordinal) + 1)..]);
        using ServiceProvider sp = Provider(new FakeMachineKernel(), Split(backend), Split(setting));

        OptionsValidationException e = Should.Throw<OptionsValidationException>(() => sp.GetRequiredService<IOptions<VfioOptions>>().Value);

        e.Message.ShouldContain(expected);
    }

    [Theory]
    [InlineData("Vfio:Backend=legacy", "Vfio:IommuFdAsContainer=true", "Vfio:IommuFd=3")]
    [InlineData("Vfio:Backend=legacy", "Vfio:ContainerFd=container", "Vfio:GroupFds:7=8")]
    [InlineData("Vfio:Backend=iommufd", "Vfio:IommuFd=iommufd", "Vfio:DeviceFds:edu=edu-cdev")]
    [InlineData("Vfio:Backend=auto", "Vfio:IommuFd=0", "Vfio:FdSocket=0")]
    public void ConsistentFdSettings_Validate(string a, string b, string c)
    {
        (string Key, string Value) Split(string s) => (s[..s.IndexOf('=', StringComparison.Ordinal)], s[(s.IndexOf('=', StringComparison.Ordinal) + 1)..]);
        using ServiceProvider sp = Provider(new FakeMachineKernel(), Split(a), Split(b), Split(c));
        sp.GetRequiredService<IOptions<VfioOptions>>().Value.ShouldNotBeNull();
    }

    [Fact]
    public void RegisteredBackendName_IsAValidValue()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel());
        services.AddVfio(Section(("Vfio:Backend", "custom")))
            .AddBackend(new IommuBackendDescriptor("custom", 5, _ => new FakeBackend("custom")));
        using ServiceProvider sp = services.BuildServiceProvider();
        sp.GetRequiredService<VfioManager>().SelectDefaultBackend().Name.ShouldBe("custom");
    }

    [Theory]
    [InlineData("iommufd", "AddIommuFdBackend()")]
    [InlineData("legacy", "AddLegacyBackend()")]
    [InlineData("spapr-tce", "AddSpaprTceBackend()")]
    public void ConfiguredBackendNotRegistered_IsReportedWhenSelected_NamingTheCallToAdd(string backend, string call)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel("/dev/iommu"));
        services.AddVfio(Section(("Vfio:Backend", backend)));
        using ServiceProvider sp = services.BuildServiceProvider();

        sp.GetRequiredService<IOptions<VfioOptions>>().Value.Backend.ShouldBe(backend); // valid as a name
        VfioBackendUnavailableException e = Should.Throw<VfioBackendUnavailableException>(() => sp.GetRequiredService<VfioManager>().SelectDefaultBackend());
        e.Backend.ShouldBe(backend);
        e.Message.ShouldContain(call);
        Should.Throw<VfioBackendUnavailableException>(() => sp.GetRequiredService<VfioManager>().SelectBackend(VfioDeviceSource.Pci("0000:00:02.0")))
            .Message.ShouldContain(call);
    }

    [Fact]
    public void Auto_WithNoBackendRegistered_SaysWhatToAdd()
    {
        var services = new ServiceCollection();
        services.AddVfio();
        using ServiceProvider sp = services.BuildServiceProvider();
        Should.Throw<VfioBackendUnavailableException>(() => sp.GetRequiredService<VfioManager>().SelectDefaultBackend()).Message.ShouldContain("AddIommuFdBackend()");
    }

    [Fact]
    public void Auto_SelectBackend_AsksByPreference_AndLogsWhyWithThePassedOverReasons()
    {
        var logs = new CapturingLoggerProvider();
        var iommufd = new FakeBackend("iommufd", canAttach: false, reason: "0000:00:02.0 has no vfio-dev cdev");
        var legacy = new FakeBackend("legacy", canAttach: true, reason: "/dev/vfio/7 exists");
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel("/dev/iommu"));
        services.AddLogging(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
        VfioBuilder builder = services.AddVfio();
        builder.AddBackend(new IommuBackendDescriptor("legacy", 10, _ => legacy));
        builder.AddBackend(new IommuBackendDescriptor("iommufd", 20, _ => iommufd));
        using ServiceProvider sp = services.BuildServiceProvider();
        VfioManager manager = sp.GetRequiredService<VfioManager>();

        manager.SelectBackend(VfioDeviceSource.Pci("0000:00:02.0")).ShouldBeSameAs(legacy);

        iommufd.Calls.ShouldBe(["CanAttach 0000:00:02.0"]);
        legacy.Calls.ShouldBe(["CanAttach 0000:00:02.0"]);
        (string category, LogLevel level, string message) = logs.Entries.Single(e => e.Message.Contains("chosen for 0000:00:02.0", StringComparison.Ordinal));
        category.ShouldBe(typeof(VfioManager).FullName);
        level.ShouldBe(LogLevel.Information);
        message.ShouldBe("VFIO backend legacy chosen for 0000:00:02.0: /dev/vfio/7 exists; passed over: iommufd: 0000:00:02.0 has no vfio-dev cdev");
    }

    [Fact]
    public void Auto_WhenNoBackendCanAttach_ListsEveryReason()
    {
        var manager = new VfioManager(new VfioOptions(),
            [new FakeBackend("iommufd", false, "no /dev/iommu"), new FakeBackend("legacy", false, "group 7 is not viable")]);
        VfioBackendUnavailableException e = Should.Throw<VfioBackendUnavailableException>(() => manager.SelectBackend(VfioDeviceSource.Pci("0000:00:02.0")));
        e.Message.ShouldContain("iommufd: no /dev/iommu");
        e.Message.ShouldContain("legacy: group 7 is not viable");
    }

    [Fact]
    public void FdSocket_ReceivesNamedFdsIntoTheStore_BeforeFirstUse_AndLeavesTheSocketOpen()
    {
        (Socket launcher, Socket worker) = Pair();
        using (launcher)
        using (worker)
        using (SafeFileHandle memfd = TestFiles.MemFd(4096))
        using (SafeFileHandle devNull = File.OpenHandle("/dev/null"))
        {
            FdPassing.Send(launcher, [new NamedFd("iommufd", memfd), new NamedFd("0000:00:02.0", devNull)]);
            int fd = (int)worker.Handle;
            using ServiceProvider sp = Provider(LinuxKernel.Instance, ("Vfio:FdSocket", fd.ToString()), ("Vfio:FdReceiveTimeout", "00:00:10"));

            VfioFdStore store = sp.GetRequiredService<VfioFdStore>();

            store.Names.Order().ShouldBe(["0000:00:02.0", "iommufd"]);
            store.TryTake("iommufd", out SafeFileHandle? received).ShouldBeTrue();
            using (received)
            {
                LinuxKernel.Instance.GetStatus(received!, out FileStatus got).ShouldBe(0);
                LinuxKernel.Instance.GetStatus(memfd, out FileStatus sent).ShouldBe(0);
                got.Inode.ShouldBe(sent.Inode);
            }

            // The inherited socket is borrowed: still open and connected both ways.
            FdPassing.Send(launcher, [new NamedFd("again", memfd)]);
            using ReceivedFds again = FdPassing.Receive(worker, TimeSpan.FromSeconds(10));
            again.Names.ShouldBe(["again"]);
            FdPassing.Send(worker, [new NamedFd("back", memfd)]);
            using ReceivedFds back = FdPassing.Receive(launcher, TimeSpan.FromSeconds(10));
            back.Names.ShouldBe(["back"]);
        }
    }

    [Fact]
    public void FdSocket_WhenNothingArrives_TimesOutNamingTheSetting()
    {
        (Socket launcher, Socket worker) = Pair();
        using (launcher)
        using (worker)
        {
            using ServiceProvider sp = Provider(LinuxKernel.Instance, ("Vfio:FdSocket", ((int)worker.Handle).ToString()), ("Vfio:FdReceiveTimeout", "00:00:00.2"));
            Should.Throw<TimeoutException>(() => sp.GetRequiredService<VfioFdStore>()).Message.ShouldContain("Vfio:FdSocket");
        }
    }

    [Fact]
    public void FdSocket_ThatIsNoSocket_IsAVfioException()
    {
        using SafeFileHandle devNull = File.OpenHandle("/dev/null");
        using ServiceProvider sp = Provider(LinuxKernel.Instance, ("Vfio:FdSocket", ((int)devNull.DangerousGetHandle()).ToString()));
        Should.Throw<VfioException>(() => sp.GetRequiredService<VfioFdStore>()).Message.ShouldContain("Vfio:FdSocket");
    }

    [Fact]
    public void Manager_OnDisposeDetachesDevicesBeforeDisposingTheBackendsItCreated()
    {
        var events = new List<string>();
        var legacy = new FakeBackend("legacy") { Events = events };
        var iommufd = new FakeBackend("iommufd") { Events = events };
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel());
        VfioBuilder builder = services.AddVfio(o => o.Backend = "legacy");
        builder.AddBackend(new IommuBackendDescriptor("legacy", 10, _ => legacy));
        builder.AddBackend(new IommuBackendDescriptor("iommufd", 20, _ => iommufd));
        ServiceProvider sp = services.BuildServiceProvider();
        VfioManager manager = sp.GetRequiredService<VfioManager>();

        DmaSpace space = manager.CreateDmaSpace("guest");
        AttachedDevice device = manager.AttachDevice("00:02.0", space);
        device.Backend.ShouldBeSameAs(legacy);
        device.Name.ShouldBe("0000:00:02.0");
        space.MapAt(0x1000, 0x10000, 4096);

        manager.Dispose();

        device.IsAttached.ShouldBeFalse();
        space.IsDisposed.ShouldBeTrue();
        // The manager owns the backends it created: devices detach first, then the backends go, least preferred first.
        events.ShouldBe(["detach 0000:00:02.0", "dispose legacy", "dispose iommufd"]);
        manager.Dispose();
        Should.Throw<ObjectDisposedException>(() => manager.CreateDmaSpace("late"));

        sp.Dispose();
        events.ShouldBe(["detach 0000:00:02.0", "dispose legacy", "dispose iommufd"]);
        legacy.DisposeCalls.ShouldBe(1);
        iommufd.DisposeCalls.ShouldBe(1);
    }

    [Theory]
    [InlineData("manager")]
    [InlineData("store, metrics, manager")]
    [InlineData("metrics, manager, store")]
    public void DisposingTheProvider_DetachesTheManagersDevicesBeforeAnyBackendIsDisposed_EachOnce_WhateverWasResolvedFirst(string order)
    {
        var events = new List<string>();
        var legacy = new FakeBackend("legacy") { Events = events };
        var iommufd = new FakeBackend("iommufd") { Events = events };
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel("/dev/iommu"));
        VfioBuilder builder = services.AddVfio();
        builder.AddBackend(new IommuBackendDescriptor("legacy", 10, _ => legacy));
        builder.AddBackend(new IommuBackendDescriptor("iommufd", 20, _ => iommufd));
        ServiceProvider sp = services.BuildServiceProvider();
        foreach (string service in order.Split(", "))
        {
            _ = service switch
            {
                "manager" => (object)sp.GetRequiredService<VfioManager>(),
                "store" => sp.GetRequiredService<VfioFdStore>(),
                _ => sp.GetRequiredService<VfioMetrics>(),
            };
        }
        VfioManager manager = sp.GetRequiredService<VfioManager>();
        manager.SelectDefaultBackend().ShouldBeSameAs(iommufd);
        DmaSpace space = manager.CreateDmaSpace();
        manager.AttachDevice("0000:00:02.0", space).Backend.ShouldBeSameAs(iommufd);
        legacy.AttachDevice(VfioDeviceSource.Pci("0000:00:03.0"), space);

        sp.Dispose();

        events.Take(2).Order().ShouldBe(["detach 0000:00:02.0", "detach 0000:00:03.0"]);
        events.Skip(2).ShouldBe(["dispose legacy", "dispose iommufd"]);
        iommufd.DisposeCalls.ShouldBe(1);
        legacy.DisposeCalls.ShouldBe(1);
    }

    [Fact]
    public void NamedManagers_AreKeyedServices_EachWithItsOwnOptionsAndBackends()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel("/dev/iommu"));
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection([new("Vm1:Vfio:Backend", "legacy"), new("Vm2:Vfio:Backend", "iommufd")])
            .Build();
        var vm1Legacy = new FakeBackend("legacy");
        var vm2IommuFd = new FakeBackend("iommufd");
        services.AddVfio("vm1", configuration.GetSection("Vm1:Vfio")).AddBackend(new IommuBackendDescriptor("legacy", 10, c => c.ManagerName == "vm1" ? vm1Legacy : throw new InvalidOperationException(c.ManagerName)));
        services.AddVfio("vm2", configuration.GetSection("Vm2:Vfio")).AddBackend(new IommuBackendDescriptor("iommufd", 20, c => c.ManagerName == "vm2" ? vm2IommuFd : throw new InvalidOperationException(c.ManagerName)));
        ServiceProvider sp = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        VfioManager vm1 = sp.GetRequiredKeyedService<VfioManager>("vm1");
        VfioManager vm2 = sp.GetRequiredKeyedService<VfioManager>("vm2");

        vm1.ShouldNotBeSameAs(vm2);
        (vm1.Name, vm2.Name).ShouldBe(("vm1", "vm2"));
        vm1.Options.Backend.ShouldBe("legacy");
        vm2.Options.Backend.ShouldBe("iommufd");
        vm1.Backends.ShouldBe([vm1Legacy]);
        vm2.Backends.ShouldBe([vm2IommuFd]);
        vm1.SelectDefaultBackend().ShouldBeSameAs(vm1Legacy);
        vm2.SelectDefaultBackend().ShouldBeSameAs(vm2IommuFd);
        sp.GetService<VfioManager>().ShouldBeNull(); // no default manager was added
        sp.GetRequiredKeyedService<VfioFdStore>("vm1").ShouldNotBeSameAs(sp.GetRequiredKeyedService<VfioFdStore>("vm2"));

        sp.Dispose();
        vm1Legacy.DisposeCalls.ShouldBe(1);
        vm2IommuFd.DisposeCalls.ShouldBe(1);
    }

    [Fact]
    public async Task NamedManager_WithAnUnknownBackend_FailsWhenTheHostStarts_NamingIt()
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection([new KeyValuePair<string, string?>("Vm2:Vfio:Backend", "iommu-fd")]);
        builder.Services.AddVfio("vm1", o => o.Backend = "legacy").AddBackend(new IommuBackendDescriptor("legacy", 10, _ => new FakeBackend("legacy")));
        builder.Services.AddVfio("vm2", builder.Configuration.GetSection("Vm2:Vfio"));
        using IHost host = builder.Build();

        OptionsValidationException e = await Should.ThrowAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));

        e.OptionsName.ShouldBe("vm2");
        e.Message.ShouldContain("'iommu-fd' is not a backend");
    }

    [Fact]
    public void BackendNames_AreValidatedPerManager()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel());
        services.AddVfio("vm1", o => o.Backend = "custom").AddBackend(new IommuBackendDescriptor("custom", 5, _ => new FakeBackend("custom")));
        services.AddVfio("vm2", o => o.Backend = "custom");
        using ServiceProvider sp = services.BuildServiceProvider();
        IOptionsMonitor<VfioOptions> options = sp.GetRequiredService<IOptionsMonitor<VfioOptions>>();

        options.Get("vm1").Backend.ShouldBe("custom");
        Should.Throw<OptionsValidationException>(() => options.Get("vm2")).Message.ShouldContain("'custom' is not a backend");
    }

    [Fact]
    public void Registration_AddsNoLoggingOfItsOwn_AndRegisteringABackendTwiceKeepsOne()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel());
        VfioBuilder builder = services.AddVfio();
        builder.AddBackend(new IommuBackendDescriptor("legacy", 10, _ => new FakeBackend("legacy")));
        var second = new FakeBackend("legacy");
        builder.AddBackend(new IommuBackendDescriptor("legacy", 10, _ => second));
        builder.HasBackend("LEGACY").ShouldBeTrue();
        builder.HasBackend("iommufd").ShouldBeFalse();
        using ServiceProvider sp = services.BuildServiceProvider();

        sp.GetService<ILoggerFactory>().ShouldBeNull(); // logging is the host's to register
        sp.GetRequiredService<VfioManager>().Backends.ShouldBe([second]);
        typeof(VfioServiceCollectionExtensions).Namespace.ShouldBe("Microsoft.Extensions.DependencyInjection");
    }

    [Fact]
    public void Descriptor_WhoseBackendHasAnotherName_IsRefused_AndWhatWasCreatedIsDisposed()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IKernel>(new FakeMachineKernel());
        var first = new FakeBackend("iommufd");
        VfioBuilder builder = services.AddVfio();
        builder.AddBackend(new IommuBackendDescriptor("iommufd", 20, _ => first));
        builder.AddBackend(new IommuBackendDescriptor("legacy", 10, _ => new FakeBackend("other")));
        using ServiceProvider sp = services.BuildServiceProvider();

        Should.Throw<InvalidOperationException>(() => sp.GetRequiredService<VfioManager>()).Message.ShouldContain("'legacy' created a backend named 'other'");
        first.DisposeCalls.ShouldBe(1);
    }

    [Fact]
    public void Metrics_UseTheHostsMeterFactory_WhenRegistered()
    {
        var services = new ServiceCollection();
        services.AddMetrics();
        services.AddVfio();
        using ServiceProvider sp = services.BuildServiceProvider();
        sp.GetRequiredService<VfioMetrics>().Meter.Scope.ShouldBeSameAs(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
    }

    /// <summary>A connected pair of Unix stream sockets.</summary>
    private static (Socket A, Socket B) Pair()
    {
        string path = TestFiles.TempPath(".sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var a = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        a.Connect(new UnixDomainSocketEndPoint(path));
        Socket b = listener.Accept();
        File.Delete(path);
        return (a, b);
    }
}
