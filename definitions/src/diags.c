/* placeholder so the skeleton configures; replaced by the definitions work */
