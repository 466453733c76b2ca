package data

import (
	"fmt"
	"os"
	"strings"
)

// Where Fashion-MNIST is found when data.path is empty: the folder named by
// FashionMNISTDirEnv, else the one the Debian package FashionMNISTPackage
// installs. Its four files have MNIST's names (MNISTFiles).
const (
	FashionMNISTDirEnv    = "SHRINK_FASHION_MNIST_DIR"
	FashionMNISTPackage   = "dataset-fashion-mnist"
	FashionMNISTDebianDir = "/usr/share/datasets/fashion-mnist"
)

// FashionMNISTHint says how to get the Fashion-MNIST files; errors and skipped
// tests end with it.
const FashionMNISTHint = "install the Debian package (`sudo apt-get install " + FashionMNISTPackage + "`, which puts them in " +
	FashionMNISTDebianDir + "), or set data.path in the recipe, or " + FashionMNISTDirEnv + ", to a folder holding " +
	"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"

// fashionDirs are the folders FindFashionMNIST looks in; a variable so tests can
// pretend the package is not installed.
var fashionDirs = []string{FashionMNISTDebianDir}

// FindFashionMNIST returns the folder holding the Fashion-MNIST files when
// data.path is empty: $SHRINK_FASHION_MNIST_DIR if set, else
// /usr/share/datasets/fashion-mnist. The error says how to get the files.
func FindFashionMNIST() (string, error) {
	if dir := os.Getenv(FashionMNISTDirEnv); dir != "" {
		if missing := missingMNISTFiles(dir); len(missing) > 0 {
			return "", fmt.Errorf("$%s is %s, which lacks %s; point it at a folder holding the four Fashion-MNIST files, or unset it to use %s (`sudo apt-get install %s` puts them there)",
				FashionMNISTDirEnv, dir, strings.Join(missing, ", "), FashionMNISTDebianDir, FashionMNISTPackage)
		}
		return dir, nil
	}
	for _, dir := range fashionDirs {
		if len(missingMNISTFiles(dir)) == 0 {
			return dir, nil
		}
	}
	return "", fmt.Errorf("cannot find the Fashion-MNIST files: data.path is empty, $%s is not set, and %s does not hold them. Fix: %s",
		FashionMNISTDirEnv, strings.Join(fashionDirs, ", "), FashionMNISTHint)
}
