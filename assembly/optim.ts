// Kernels of this family; see src/backend/kernels.ts for the contract.
