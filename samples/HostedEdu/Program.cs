// SPDX-License-Identifier: MIT
// A Generic Host that drives QEMU's edu device through VFIO: attach, registers, DMA, MSI (see README.md).
// Exit code 0 when every check passed, 1 otherwise. README.md shows this file: keep the region and the README equal.
#region README: registration
using Microsoft.Extensions.Configuration;         // GetSection, GetValue
using Microsoft.Extensions.DependencyInjection;    // AddVfio, AddLegacyBackend, AddIommuFdBackend, UseSimulator
using Microsoft.Extensions.Hosting;               // Host, IHost
using Vfio.Core;                                  // VfioBuilder
using Vfio.Samples.HostedEdu;                     // EduService, EduSampleOptions

HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
{
    Args = args,
    ContentRootPath = AppContext.BaseDirectory,   // appsettings.json beside the dll, from whatever folder it is started
});
// appsettings.json: { "Vfio": { "Backend": "iommufd" } }   (auto | legacy | iommufd; any configuration source works)
VfioBuilder vfio = builder.Services.AddVfio(builder.Configuration.GetSection("Vfio"))
    .AddLegacyBackend()
    .AddIommuFdBackend();
if (builder.Configuration.GetValue<bool>("Sample:Simulate"))
{
    vfio.UseSimulator();   // --Sample:Simulate=true: the simulator's model of the testbed machine, not the kernel
}
builder.Services.Configure<EduSampleOptions>(builder.Configuration.GetSection("Sample"));
builder.Services.AddHostedService<EduService>();   // a BackgroundService that receives VfioManager

using IHost host = builder.Build();
await host.RunAsync();
return Environment.ExitCode;   // EduService sets it: 0 when every check passed
#endregion
