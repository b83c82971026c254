// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Shouldly;

namespace Vfio.Core.Tests.DependencyInjection;

public sealed class DeviceFdsKeyTests
{
    [Fact]
    public void DeviceFds_KeyWithUnderscores_NamesThePciDevice()
    {
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Vfio:Backend"] = "iommufd",
                ["Vfio:DeviceFds:0000_00_02.0"] = "edu",
            })
            .Build();
        var services = new ServiceCollection();
        services.AddVfio(configuration.GetSection("Vfio"));
        using ServiceProvider provider = services.BuildServiceProvider();

        VfioOptions options = provider.GetRequiredService<IOptions<VfioOptions>>().Value;
        options.DeviceFds.TryGetValue("0000:00:02.0", out string? reference).ShouldBeTrue();
        reference.ShouldBe("edu");
        options.DeviceFds.ContainsKey("0000:00:03.0").ShouldBeFalse();
    }
}
