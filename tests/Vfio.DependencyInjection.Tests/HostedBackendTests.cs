// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Shouldly;
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Simulator;
using Vfio.Samples.Edu;

namespace Vfio.DependencyInjection.Tests;

/// <summary>A host built from configuration resolves the configured backend and drives edu through it.</summary>
public sealed class HostedBackendTests
{
    private const string Edu = "0000:00:02.0";
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData("iommufd", "iommufd")]
    [InlineData("legacy", "legacy")]
    [InlineData("auto", "iommufd")]
    public async Task Host_FromConfiguration_ResolvesTheBackend_AndRunsTheEduDmaRoundTrip(string configured, string expected)
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology().AddPci(Edu, iommuGroup: 2, new EduDevice()));
        using IHost host = BuildHost(kernel, new() { ["Vfio:Backend"] = configured });
        await host.StartAsync(TestContext.Current.CancellationToken);

        host.Services.GetRequiredService<VfioManager>().SelectDefaultBackend().Name.ShouldBe(expected);
        VfioManager manager = host.Services.GetRequiredService<VfioManager>();
        using (DmaSpace space = manager.CreateDmaSpace("edu"))
        using (AttachedDevice edu = manager.AttachDevice(Edu, space))
        {
            edu.Backend.Name.ShouldBe(expected);
            RoundTrip(kernel, space, edu);
        }

        await host.StopAsync(TestContext.Current.CancellationToken);
        host.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue(kernel.GetState().ToString());
    }

    [Fact]
    public async Task Host_Auto_WithoutIommuFd_FallsBackToLegacy()
    {
        var topology = new SimulatedTopology { IommuFd = false, DeviceCdev = false }.AddPci(Edu, iommuGroup: 2, new EduDevice());
        using var kernel = new SimulatedKernel(topology);
        using IHost host = BuildHost(kernel, new() { ["Vfio:Backend"] = "auto" });
        await host.StartAsync(TestContext.Current.CancellationToken);

        VfioManager manager = host.Services.GetRequiredService<VfioManager>();
        using DmaSpace space = manager.CreateDmaSpace("edu");
        using AttachedDevice edu = manager.AttachDevice(Edu, space);
        edu.Backend.Name.ShouldBe("legacy");
        RoundTrip(kernel, space, edu);
    }

    [Fact]
    public async Task Host_UseSimulator_RunsOnTheTestbedMachine_AndDisposesItsKernel()
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Vfio:Backend"] = "iommufd" });
        builder.Services.AddVfio(builder.Configuration.GetSection(VfioOptions.SectionName))
            .AddLegacyBackend().AddIommuFdBackend().UseSimulator();
        SimulatedKernel kernel;
        using (IHost host = builder.Build())
        {
            await host.StartAsync(TestContext.Current.CancellationToken);
            kernel = host.Services.GetRequiredService<SimulatedKernel>();
            host.Services.GetRequiredService<IKernel>().ShouldBeSameAs(kernel);
            VfioManager manager = host.Services.GetRequiredService<VfioManager>();
            using DmaSpace space = manager.CreateDmaSpace("edu");
            using AttachedDevice edu = manager.AttachDevice(SimulatedMachines.Edu, space);
            using AttachedDevice edu2 = manager.AttachDevice(SimulatedMachines.Edu2, space);
            RoundTrip(kernel, space, edu2);
            await host.StopAsync(TestContext.Current.CancellationToken);
        }
        Should.Throw<ObjectDisposedException>(() => kernel.Exists("/dev/vfio/vfio"));
    }

    [Fact]
    public async Task Host_TwoNamedManagers_OnDifferentBackends_EachRunTheEduDmaRoundTrip_AndTearDownCompletely()
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Vm1:Vfio:Backend"] = "legacy",
            ["Vm2:Vfio:Backend"] = "iommufd",
        });
        builder.Services.AddVfio("vm1", builder.Configuration.GetSection("Vm1:Vfio")).AddLegacyBackend().UseSimulator();
        builder.Services.AddVfio("vm2", builder.Configuration.GetSection("Vm2:Vfio")).AddIommuFdBackend();
        SimulatedKernel kernel;
        using (IHost host = builder.Build())
        {
            await host.StartAsync(TestContext.Current.CancellationToken);
            kernel = host.Services.GetRequiredService<SimulatedKernel>();
            VfioManager vm1 = host.Services.GetRequiredKeyedService<VfioManager>("vm1");
            VfioManager vm2 = host.Services.GetRequiredKeyedService<VfioManager>("vm2");
            DmaSpace space1 = vm1.CreateDmaSpace("vm1 RAM");
            DmaSpace space2 = vm2.CreateDmaSpace("vm2 RAM");
            AttachedDevice edu = vm1.AttachDevice(SimulatedMachines.Edu, space1);
            AttachedDevice edu2 = vm2.AttachDevice(SimulatedMachines.Edu2, space2);
            edu.Backend.Name.ShouldBe("legacy");
            edu2.Backend.Name.ShouldBe("iommufd");
            RoundTrip(kernel, space1, edu);
            RoundTrip(kernel, space2, edu2);
            kernel.GetState().IsEmpty.ShouldBeFalse();

            // Disposing the host disposes both managers: devices, mappings, containers, then backends, nothing left.
            await host.StopAsync(TestContext.Current.CancellationToken);
            host.Dispose();
            edu.IsAttached.ShouldBeFalse();
            edu2.IsAttached.ShouldBeFalse();
        }
        Should.Throw<ObjectDisposedException>(() => kernel.Exists("/dev/vfio/vfio"));
    }

    [Fact]
    public async Task Host_UnknownBackend_FailsAtStart_NamingTheValidValues()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology());
        using IHost host = BuildHost(kernel, new() { ["Vfio:Backend"] = "vfio-user" });
        OptionsValidationException e = await Should.ThrowAsync<OptionsValidationException>(
            () => host.StartAsync(TestContext.Current.CancellationToken));
        e.Message.ShouldContain("vfio-user");
        e.Message.ShouldContain("iommufd");
        e.Message.ShouldContain("legacy");
    }

    [Fact]
    public void NoDi_BackendFromOptions_RunsTheEduDmaRoundTrip()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology().AddPci(Edu, iommuGroup: 2, new EduDevice()));
        var options = new VfioOptions { Backend = "iommufd" };
        using var backend = new IommuFdBackend(kernel, options);
        using (var manager = new VfioManager(options, [backend, new LegacyBackend(kernel, options)]))
        {
            DmaSpace space = manager.CreateDmaSpace("edu");
            AttachedDevice edu = manager.AttachDevice(Edu, space);
            edu.Backend.ShouldBeSameAs(backend);
            RoundTrip(kernel, space, edu);
        }
        kernel.GetState().DmaMappings.ShouldBe(0);
    }

    internal static IHost BuildHost(SimulatedKernel kernel, Dictionary<string, string?> configuration)
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(configuration);
        builder.Services.AddSingleton<IKernel>(kernel);
        builder.Services.AddVfio(builder.Configuration.GetSection(VfioOptions.SectionName)).AddLegacyBackend().AddIommuFdBackend();
        return builder.Build();
    }

    /// <summary>RAM → edu → RAM through a mapping of the space, then a DMA after unmap is blocked.</summary>
    private static void RoundTrip(SimulatedKernel kernel, DmaSpace space, AttachedDevice device)
    {
        using DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
        DmaMapping mapping = memory.Mapping;
        Span<byte> buffer = memory.Span;
        Random.Shared.NextBytes(buffer[..1024]);
        using var edu = new EduDriver(device, useMmap: true);
        edu.EnableBusMaster();
        edu.DmaToDevice(mapping.Iova, 0, 1024, s_timeout);
        edu.DmaFromDevice(0, mapping.Iova + 4096, 1024, s_timeout);
        buffer.Slice(4096, 1024).SequenceEqual(buffer[..1024]).ShouldBeTrue();
        int faults = kernel.DmaFaults.Count(f => f.Device == device.Name);
        faults.ShouldBe(0);

        space.Unmap(mapping.Iova);   // the buffer's memory stays until it is disposed
        buffer.Slice(4096, 1024).Clear();
        edu.DmaFromDevice(0, mapping.Iova + 4096, 1024, s_timeout);
        buffer.Slice(4096, 1024).IndexOfAnyExcept((byte)0).ShouldBe(-1);
        kernel.DmaFaults.Count(f => f.Device == device.Name).ShouldBeGreaterThan(faults);
    }
}
