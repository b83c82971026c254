// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>A registered legacy IOMMU backend (the kernel's <c>vfio_iommu_driver</c> list): how it answers
/// CHECK_EXTENSION before it is chosen, and how SET_IOMMU opens it.</summary>
/// <param name="Name">Its name, e.g. <c>vfio-iommu-type1</c>.</param>
/// <param name="ForNoIommu">True for the no-IOMMU backend, the only one a container of no-IOMMU groups may use.</param>
/// <param name="CheckExtension">The stateless answer to CHECK_EXTENSION.</param>
/// <param name="Open">Opens an instance for SET_IOMMU(type): the backend or <c>-errno</c>.</param>
internal sealed record IommuBackendRegistration(
    string Name,
    bool ForNoIommu,
    Func<uint, int> CheckExtension,
    Func<uint, (int Result, IVfioIommuDriver? Driver)> Open);
