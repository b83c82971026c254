// SPDX-License-Identifier: MIT
// A Generic Host that drives QEMU's edu device through VFIO: attach, registers, DMA, MSI (see README.md).
// Exit code 0 when every check passed, 1 otherwise.
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Samples.HostedEdu;
using Vfio.Simulator;

HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
{
    Args = args,
    ContentRootPath = AppContext.BaseDirectory,   // appsettings.json beside the dll, from whatever folder it is started
});

#region README: registration
// appsettings.json: { "Vfio": { "Backend": "iommufd" } }   (auto | legacy | iommufd; any configuration source works)
VfioBuilder vfio = builder.Services.AddVfio(builder.Configuration.GetSection("Vfio"))
    .AddLegacyBackend()
    .AddIommuFdBackend();
builder.Services.AddHostedService<EduService>();   // a BackgroundService that receives VfioManager
#endregion

// --Sample:Simulate=true (or the environment variable Sample__Simulate=true): run on the simulator's model of the
// testbed machine (edu at 0000:00:02.0) instead of the running kernel. Nothing else in the program changes.
if (builder.Configuration.GetValue<bool>("Sample:Simulate"))
{
    vfio.UseSimulator();
}
builder.Services.Configure<EduSampleOptions>(builder.Configuration.GetSection("Sample"));

using IHost host = builder.Build();
await host.RunAsync();
return Environment.ExitCode;
